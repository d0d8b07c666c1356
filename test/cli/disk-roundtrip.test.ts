// Whole disks through capture and restore, checked with the field's own tools: a GPT
// disk (BIOS boot, FAT32 ESP, swap, ext4) and an MBR disk (NTFS, two logical ext4),
// restored onto files and loop devices of the same size and of twice the size.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import { blkid } from '../helpers/blkid.js';
import { b365, CLI_MAIN, type CliResult } from '../helpers/cli.js';
import { attachLoop, makeImageFile, MiB, mount, run } from '../helpers/disk.js';
import { buildGptDisk, buildMbrDisk, snapshotFat, snapshotTree, tableDump, SWAP_UUID } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

/** Mount each restored partition read-only and compare it with the source's. */
async function compareDisks(
  t: Test,
  source: string,
  restored: string,
  options: {
    partitions: { number: number; kind: 'ext' | 'ntfs' | 'fat' | 'swap' | 'raw' }[];
    grownLast?: boolean;
    largerTarget?: boolean;
  },
): Promise<void> {
  const a = await attachLoop(t, source, { readOnly: true });
  const b = await attachLoop(t, restored, { readOnly: true });
  const dumpA = await tableDump(a.device);
  const dumpB = await tableDump(b.device);
  if (!options.largerTarget) t.equal(dumpB, dumpA, 'sfdisk --dump is identical');
  else {
    const strip = (dump: string, grown: boolean) =>
      dump
        .split('\n')
        .filter((line) => !line.startsWith('last-lba:'))
        .map((line, index, lines) =>
          grown && (index === lines.length - 1 || /type=(5|f|85)\b/.test(line))
            ? line.replace(/size=\s*\d+,/, 'size=GROWN,')
            : line,
        )
        .join('\n');
    t.equal(
      strip(dumpB, options.grownLast ?? false),
      strip(dumpA, options.grownLast ?? false),
      'sfdisk --dump equal apart from last-lba and the grown last partition (and its extended container)',
    );
  }
  for (const { number, kind } of options.partitions) {
    const partA = a.partition(number);
    const partB = b.partition(number);
    const idA = await blkid(partA);
    const idB = await blkid(partB);
    for (const key of ['UUID', 'LABEL', 'TYPE', 'PART_ENTRY_UUID', 'PART_ENTRY_NAME', 'PART_ENTRY_TYPE']) {
      if (idA[key] !== undefined) t.equal(idB[key], idA[key], `partition ${number}: blkid ${key} equal`);
    }
    if (kind === 'ext') {
      t.equal(
        (await execa('e2fsck', ['-fn', partB], { reject: false })).exitCode,
        0,
        `partition ${number}: e2fsck -fn clean`,
      );
      const mountA = await mount(t, partA, { options: 'ro' });
      const mountB = await mount(t, partB, { options: 'ro' });
      t.same(
        await snapshotTree(mountB.path, { xattrs: true }),
        await snapshotTree(mountA.path, { xattrs: true }),
        `partition ${number}: every file equal (content, mode, owner, mtime, links, xattrs)`,
      );
      await mountB.unmount();
      await mountA.unmount();
    } else if (kind === 'ntfs') {
      t.equal(
        (await execa('ntfsfix', ['--no-action', partB], { reject: false })).exitCode,
        0,
        `partition ${number}: ntfsfix -n clean`,
      );
      const mountA = await mount(t, partA, { type: 'ntfs-3g', options: 'ro' });
      const mountB = await mount(t, partB, { type: 'ntfs-3g', options: 'ro' });
      t.same(await snapshotTree(mountB.path), await snapshotTree(mountA.path), `partition ${number}: every file equal`);
      await mountB.unmount();
      await mountA.unmount();
    } else if (kind === 'fat') {
      t.equal(
        (await execa('fsck.fat', ['-n', partB], { reject: false })).exitCode,
        0,
        `partition ${number}: fsck.fat -n clean`,
      );
      const offset = Number((await run('partx', ['-g', '-o', 'START', '-n', String(number), source])).trim()) * 512;
      t.same(
        await snapshotFat(restored, offset),
        await snapshotFat(source, offset),
        `partition ${number}: every file equal (mtools)`,
      );
    } else if (kind === 'swap') {
      t.equal(idB.UUID, SWAP_UUID, 'swap keeps its UUID');
    } else {
      const [bytesA, bytesB] = await Promise.all(
        [partA, partB].map((node) => execa('sh', ['-c', `head -c 1048576 ${node} | b3sum --no-names`])),
      );
      t.equal(bytesB.stdout, bytesA.stdout, `partition ${number}: raw bytes equal`);
    }
  }
  await b.detach();
  await a.detach();
}

async function restore(
  server: TestServer,
  image: string,
  target: string,
  extra: string[] = [],
): Promise<CliResult['json']> {
  const result = await b365(['restore', image, '--to', target, '--yes', '--json', ...extra], { env: server.env });
  if (result.exitCode !== 0) throw new Error(`restore failed (${result.exitCode}): ${result.stderr}`);
  return result.json;
}

t.test('GPT disk: BIOS boot, ESP, swap, ext4', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const disk = await buildGptDisk(t, directory);
  const captured = await b365(['image', disk.image, '--machine', 'gpt-pc', '--json'], { env: server.env });
  t.equal(captured.exitCode, 0, captured.stderr);
  const volumes = captured.json.volumes as { volume: string; method: string; filesystem: string | null }[];
  t.same(
    volumes.map((volume) => [volume.volume, volume.method]),
    [
      ['gap0', 'raw'],
      ['p1', 'raw'],
      ['p2', 'used-blocks'],
      ['p3', 'swap-header-only'],
      ['p4', volumes.find((volume) => volume.volume === 'p4')!.method],
      ['gap1', 'raw'],
    ],
    'gaps and partitions in disk order, each with its method',
  );
  t.match(
    captured.json.warnings.join('\n'),
    /partition 1 of .* holds no filesystem Backup365 reads/,
    'the BIOS boot partition is imaged raw, with a warning',
  );
  const partitions = [
    { number: 1, kind: 'raw' as const },
    { number: 2, kind: 'fat' as const },
    { number: 3, kind: 'swap' as const },
    { number: 4, kind: 'ext' as const },
  ];

  t.test('onto a blank file of the same size', async (t) => {
    const target = path.join(directory, 'same.img');
    const report = await restore(server, 'gpt-pc@latest', target);
    t.equal(report.verified, true);
    t.ok(
      report.checks.some((check: { check: string; ok: boolean }) => check.check.startsWith('fsck of p4') && check.ok),
      'the restore ran e2fsck itself',
    );
    await compareDisks(t, disk.image, target, { partitions });
  });

  t.test('onto a loop device of the same size', async (t) => {
    const file = await makeImageFile(path.join(directory, 'loop-same.img'), disk.size);
    const loop = await attachLoop(t, file);
    await restore(server, 'gpt-pc@latest', loop.device);
    await loop.detach();
    await compareDisks(t, disk.image, file, { partitions });
  });

  t.test('onto a file twice the size, with --grow', async (t) => {
    const target = await makeImageFile(path.join(directory, 'double-grow.img'), 2 * disk.size);
    const report = await restore(server, 'gpt-pc@latest', target, ['--grow']);
    t.match(report.grown, /^p4: /);
    await compareDisks(t, disk.image, target, { partitions, largerTarget: true, grownLast: true });
    const loop = await attachLoop(t, target, { readOnly: true });
    const blocks = Number(/Block count:\s+(\d+)/.exec(await run('dumpe2fs', ['-h', loop.partition(4)]))![1]) * 4096;
    t.ok(blocks > disk.size, `the ext4 filesystem grew to ${blocks} bytes`);
  });

  t.test('onto a loop device twice the size, without --grow', async (t) => {
    const file = await makeImageFile(path.join(directory, 'loop-double.img'), 2 * disk.size);
    const loop = await attachLoop(t, file);
    await restore(server, 'gpt-pc@latest', loop.device);
    await loop.detach();
    await compareDisks(t, disk.image, file, { partitions, largerTarget: true });
    t.match(await run('sgdisk', ['-v', file]), /No problems found/, 'sgdisk -v: the backup GPT sits at the new end');
  });

  t.test('refusals leave the target untouched', async (t) => {
    const checksum = async (file: string) => (await execa('b3sum', ['--no-names', file])).stdout;
    const small = await makeImageFile(path.join(directory, 'small.img'), disk.size - 5 * MiB);
    const smallLoop = await attachLoop(t, small);
    await fs.writeFile(small, Buffer.alloc(1 << 20, 0x42), { flag: 'r+' });
    const before = await checksum(small);
    const tooSmall = await b365(['restore', 'gpt-pc@latest', '--to', smallLoop.device, '--yes'], { env: server.env });
    t.equal(tooSmall.exitCode, 8);
    t.match(tooSmall.stderr, /is 5\.0 MiB \(5242880 bytes\) smaller than the/);
    t.equal(await checksum(small), before, 'too small: not a byte written');

    const busy = await makeImageFile(path.join(directory, 'busy.img'), disk.size);
    await run('mkfs.ext4', ['-q', busy]);
    const busyLoop = await attachLoop(t, busy);
    const mounted = await mount(t, busyLoop.device, { options: 'ro' });
    const busyBefore = await checksum(busy);
    const refused = await b365(['restore', 'gpt-pc@latest', '--to', busyLoop.device, '--yes'], { env: server.env });
    t.equal(refused.exitCode, 8);
    t.match(refused.stderr, new RegExp(`it has mounted filesystems \\(${busyLoop.device} at ${mounted.path}\\)`));
    await mounted.unmount();
    t.equal(await checksum(busy), busyBefore, 'mounted: not a byte written');

    const unconfirmed = await b365(['restore', 'gpt-pc@latest', '--to', busyLoop.device], { env: server.env });
    t.equal(unconfirmed.exitCode, 8, 'no terminal and no --yes: nobody confirmed the disk');
    t.match(unconfirmed.stderr, /confirm with --yes/);
    t.equal(await checksum(busy), busyBefore, 'unconfirmed: not a byte written');

    const typedWrong = await execa(
      'script',
      ['-qec', `${process.execPath} ${CLI_MAIN} restore gpt-pc@latest --to ${busyLoop.device}`, '/dev/null'],
      { env: server.env, input: 'sda\n', reject: false },
    );
    t.not(typedWrong.exitCode, 0);
    t.match(String(typedWrong.stdout), /will ERASE everything on/);
    t.equal(await checksum(busy), busyBefore, 'the wrong name typed back: not a byte written');
  });

  t.test('killed during the restore, then run again', async (t) => {
    const file = await makeImageFile(path.join(directory, 'interrupted.img'), disk.size);
    const loop = await attachLoop(t, file);
    const child = execa(
      process.execPath,
      [CLI_MAIN, 'restore', 'gpt-pc@latest', '--to', loop.device, '--yes', '--parallel', '1'],
      { env: server.env, reject: false },
    );
    // Killed once the last partition (from 98 MiB) starts to arrive: a poll that reads only
    // its first 2 MiB is quick enough to land well before the table, written last.
    for (let waited = 0; waited < 200; waited++) {
      const dump = await execa('sh', [
        '-c',
        `dd if=${loop.device} bs=1M skip=98 count=2 status=none | tr -d '\\0' | head -c 1 | wc -c`,
      ]);
      if (dump.stdout.trim() === '1') break;
      await sleep(50);
    }
    child.kill('SIGKILL');
    await child;
    const table = await execa('sfdisk', ['--dump', loop.device], { reject: false });
    t.notMatch(String(table.stdout), /label: gpt/, 'the half-restored disk has no partition table');
    await restore(server, 'gpt-pc@latest', loop.device);
    await loop.detach();
    await compareDisks(t, disk.image, file, { partitions });
  });
});

t.test('MBR disk: NTFS and two logical ext4', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const disk = await buildMbrDisk(t, directory);
  const captured = await b365(['image', disk.image, '--machine', 'mbr-pc', '--json'], { env: server.env });
  t.equal(captured.exitCode, 0, captured.stderr);
  const partitions = [
    { number: 1, kind: 'ntfs' as const },
    { number: 5, kind: 'ext' as const },
    { number: 6, kind: 'ext' as const },
  ];

  t.test('onto a blank file of the same size', async (t) => {
    const target = path.join(directory, 'same.img');
    const report = await restore(server, 'mbr-pc@latest', target);
    t.equal(report.verified, true);
    await compareDisks(t, disk.image, target, { partitions });
  });

  t.test('onto a loop device twice the size, with --grow', async (t) => {
    const file = await makeImageFile(path.join(directory, 'double.img'), 2 * disk.size);
    const loop = await attachLoop(t, file);
    const report = await restore(server, 'mbr-pc@latest', loop.device, ['--grow']);
    t.match(report.grown, /^p6: /);
    await loop.detach();
    await compareDisks(t, disk.image, file, { partitions, largerTarget: true, grownLast: true });
  });
});
