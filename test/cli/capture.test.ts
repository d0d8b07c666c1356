// Whole-disk capture in the hard cases: damaged superblocks and tables, filesystems
// mounted read-write (refused, or frozen and always thawed), and the size of an
// incremental image after a day of changes.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { Prng, textLike } from '../helpers/content.js';
import { attachLoop, makeImageFile, MiB, mount, run, sfdisk } from '../helpers/disk.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('damage falls back, with warnings, and does not crash', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const disk = await makeImageFile(path.join(directory, 'damaged.img'), 128 * MiB);
  await sfdisk(disk, 'label: gpt\nsize=60MiB, type=linux, name="good"\ntype=linux, name="broken"\n');
  const loop = await attachLoop(t, disk);
  await run('mkfs.ext4', ['-q', loop.partition(1)]);
  await run('mkfs.ext4', ['-q', loop.partition(2)]);
  await loop.detach();
  const partition2 = Number((await run('partx', ['-g', '-o', 'START', '-n', '2', disk])).trim()) * 512;
  const handle = await fs.open(disk, 'r+');
  // The second filesystem's superblock magic, and the primary GPT header.
  await handle.write(Buffer.from([0, 0]), 0, 2, partition2 + 1024 + 56);
  await handle.write(Buffer.alloc(92, 0x33), 0, 92, 512);
  await handle.close();

  const result = await b365(['image', disk, '--machine', 'damaged', '--json'], { env: server.env });
  t.equal(result.exitCode, 0, result.stderr);
  const warnings = result.json.warnings.join('\n');
  t.match(
    warnings,
    /primary GPT.*backup|backup GPT/i,
    'the damaged primary GPT falls back to the backup, with a warning',
  );
  const volumes = Object.fromEntries(
    result.json.volumes.map((volume: { volume: string; method: string; filesystem: string | null }) => [
      volume.volume,
      volume,
    ]),
  );
  t.equal(volumes.p1.method, 'used-blocks');
  t.equal(volumes.p2.method, 'raw', 'the filesystem with a bad superblock is imaged raw');
  t.match(warnings, /partition 2 of .*raw, all-zero chunks as holes/, 'and the warning names the partition and why');
  const restored = path.join(directory, 'restored.img');
  const restore = await b365(['restore', 'damaged@latest', '--to', restored, '--json'], { env: server.env });
  t.equal(restore.exitCode, 0, restore.stderr);
  t.equal(restore.json.verified, true);
});

t.test('b365 disks describes image files and loop devices; LVM is said and imaged raw', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const disk = await makeImageFile(path.join(directory, 'lvm.img'), 96 * MiB);
  await sfdisk(
    disk,
    'label: gpt\nsize=40MiB, type=linux, name="root"\ntype=E6D6D379-F507-44C2-A23C-238F2A3DF928, name="lvm"\n',
  );
  const loop = await attachLoop(t, disk);
  await run('mkfs.ext4', ['-q', '-L', 'rootfs', loop.partition(1)]);
  await run('pvcreate', ['-ff', '-y', '--devices', loop.partition(2), loop.partition(2)]);

  const fromFile = await b365(['disks', disk, '--json']);
  t.equal(fromFile.exitCode, 0, fromFile.stderr);
  const fileDisk = fromFile.json.disks[0];
  t.equal(fileDisk.kind, 'file');
  t.equal(fileDisk.partitionTable, 'gpt');
  t.same(
    fileDisk.partitions.map(
      (partition: { number: number; filesystem: string | null; fsLabel: string | null; label: string | null }) => [
        partition.number,
        partition.filesystem,
        partition.fsLabel,
        partition.label,
      ],
    ),
    [
      [1, 'ext4', 'rootfs', 'root'],
      [2, null, null, 'lvm'],
    ],
  );
  const fromDevice = await b365(['disks', loop.device, '--json']);
  t.equal(fromDevice.exitCode, 0, fromDevice.stderr);
  const device = fromDevice.json.disks[0];
  t.equal(device.path, loop.device);
  t.equal(device.size, 96 * MiB);
  t.equal(
    device.partitions.find((partition: { number: number }) => partition.number === 1)?.uuid,
    (await run('blkid', ['-s', 'UUID', '-o', 'value', loop.partition(1)])).trim(),
    'UUID as blkid has it',
  );
  const human = await b365(['disks', disk]);
  t.match(human.stdout, /GPT/);

  const captured = await b365(['image', disk, '--machine', 'lvm-pc', '--json'], { env: server.env });
  t.equal(captured.exitCode, 0, captured.stderr);
  t.match(
    captured.json.warnings.join('\n'),
    /partition 2 of .* holds a LVM2 physical volume: its LVM logical volumes are imaged raw/,
    'LVM is named, and imaged raw',
  );
  t.equal(captured.json.volumes.find((volume: { volume: string }) => volume.volume === 'p2').method, 'raw');
});

t.test('live filesystems: refused without a choice, frozen and thawed with --freeze', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const disk = await makeImageFile(path.join(directory, 'live.img'), 96 * MiB);
  await sfdisk(disk, 'label: gpt\ntype=linux\n');
  const loop = await attachLoop(t, disk);
  await run('mkfs.ext4', ['-q', loop.partition(1)]);
  const mounted = await mount(t, loop.partition(1));
  await fs.writeFile(path.join(mounted.path, 'live.txt'), 'in use\n');

  const refused = await b365(['image', loop.device, '--machine', 'live'], { env: server.env });
  t.equal(refused.exitCode, 8);
  t.match(refused.stderr, new RegExp(`${loop.partition(1)} \\(ext4\\) mounted read-write at ${mounted.path}`));
  t.match(refused.stderr, /--freeze.*--crash-consistent/);
  const viaFile = await b365(['image', disk, '--machine', 'live'], { env: server.env });
  t.equal(viaFile.exitCode, 8, 'also refused through the image file behind the loop device');

  const frozen = await b365(['image', loop.device, '--machine', 'live', '--freeze', '--json'], { env: server.env });
  t.equal(frozen.exitCode, 0, frozen.stderr);
  // A write to a filesystem left frozen blocks: give it a few seconds, then say so.
  const written = fs.writeFile(path.join(mounted.path, 'after.txt'), 'writable again\n').then(() => 'written');
  t.equal(
    await Promise.race([written, sleep(10_000, 'still frozen', { ref: false })]),
    'written',
    'the filesystem is writable after a frozen capture',
  );
  t.equal(await fs.readFile(path.join(mounted.path, 'after.txt'), 'utf8'), 'writable again\n');

  // Now the upload fails mid-way (no server): the filesystem must still be thawed.
  await server.stop();
  const failed = await b365(['image', loop.device, '--machine', 'live', '--freeze', '--full'], {
    env: { ...server.env, B365_RETRY_FOR_MS: '300' },
  });
  t.not(failed.exitCode, 0);
  const write = execa('sh', [
    '-c',
    `echo thawed > ${path.join(mounted.path, 'after-failure.txt')} && sync -f ${mounted.path}`,
  ]);
  const outcome = await Promise.race([write.then(() => 'written'), sleep(10_000).then(() => 'blocked')]);
  if (outcome === 'blocked') await execa('fsfreeze', ['--unfreeze', mounted.path], { reject: false });
  t.equal(outcome, 'written', 'thawed even though the capture failed');

  const crash = await startServer(t);
  const consistent = await b365(['image', loop.device, '--machine', 'live', '--crash-consistent', '--json'], {
    env: crash.env,
  });
  t.equal(consistent.exitCode, 0, consistent.stderr);
});

t.test('incremental after changing 2% of the files of a 40%-full ext4', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const disk = await makeImageFile(path.join(directory, 'nightly.img'), 640 * MiB);
  await sfdisk(disk, 'label: gpt\ntype=linux\n');
  const loop = await attachLoop(t, disk);
  await run('mkfs.ext4', ['-q', loop.partition(1)]);
  let mounted = await mount(t, loop.partition(1));
  const prng = new Prng(11);
  const files: string[] = [];
  let total = 0;
  while (total < 0.4 * 640 * MiB) {
    const size = 8 * 1024 + (prng.next() % (400 * 1024));
    const content = prng.next() % 3 === 0 ? Buffer.alloc(size) : textLike(prng, size);
    if (prng.next() % 3 === 0) prng.fill(content);
    const file = path.join(mounted.path, `d${files.length % 40}`, `f${files.length}.bin`);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
    files.push(file);
    total += size;
  }
  await mounted.unmount();
  const first = await b365(['image', loop.device, '--machine', 'nightly', '--json'], { env: server.env });
  t.equal(first.exitCode, 0, first.stderr);

  mounted = await mount(t, loop.partition(1));
  let changed = 0;
  for (let index = 0; index < files.length; index += 50) {
    const file = files[index]!.replace(path.dirname(path.dirname(files[index]!)), mounted.path);
    const stats = await fs.stat(file);
    const content = Buffer.alloc(stats.size);
    prng.fill(content);
    // Edited in place, as documents and databases are: the file keeps its blocks.
    const handle = await fs.open(file, 'r+');
    await handle.write(content, 0, content.length, 0);
    await handle.close();
    changed += stats.size;
  }
  await mounted.unmount();
  const second = await b365(['image', loop.device, '--machine', 'nightly', '--json'], { env: server.env });
  t.equal(second.exitCode, 0, second.stderr);
  t.ok(
    second.json.bytesUploaded <= 3 * changed,
    `uploaded ${second.json.bytesUploaded} bytes for ${changed} changed: at most 3x`,
  );
  t.ok(second.json.bytesUploaded > 0);
  t.ok(first.json.bytesRead < 0.5 * 640 * MiB, `the first image read only used blocks (${first.json.bytesRead} bytes)`);
});
