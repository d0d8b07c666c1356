// Writing tables back for restore: onto a blank disk of the same size the table comes
// back byte for byte; onto a larger one the backup GPT moves to the new end; growing
// ends the last partition where sfdisk would; wiping leaves a disk with no table.
import fs from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { UnsafeTargetError } from '../../../src/core/errors.js';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { diskLayout } from '../../../imaging/partition/layout.js';
import { readPartitionTable } from '../../../imaging/partition/table.js';
import {
  maskTableSignatures,
  restoreTableWrites,
  wipeTableSignatures,
  type DiskGeometry,
} from '../../../imaging/partition/write.js';
import { makeImageFile, run, readAt } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  applyImageWrites,
  attachLoop4k,
  dumpOf,
  gptDisk,
  hybridDisk,
  mbrDisk,
  MiB,
  readImageTable,
  sfdiskJson,
} from './disks.js';

const SECTOR = 512;
const SOURCE: DiskGeometry = { size: 64 * MiB, sectorSize: SECTOR };
const TWICE: DiskGeometry = { size: 128 * MiB, sectorSize: SECTOR };

/** Captures `image` and restores its table onto a new blank image of `target` size. */
async function restoreOnto(
  directory: string,
  image: string,
  target: DiskGeometry,
  options: { grow?: boolean; keepFirstSector?: boolean } = {},
) {
  const { table } = await readImageTable(image);
  const firstSector = await readAt(image, 0, SECTOR);
  const blank = await makeImageFile(path.join(directory, `target-${path.basename(image)}`), target.size);
  await applyImageWrites(blank, wipeTableSignatures(target));
  const restored = restoreTableWrites(table, SOURCE, target, {
    growLastPartition: options.grow === true,
    ...(options.keepFirstSector === false ? {} : { firstSector }),
  });
  await applyImageWrites(blank, restored.writes);
  return { table, fitted: restored.table, writes: restored.writes, target: blank };
}

async function sameBytes(t: Test, a: string, b: string, offset: number, length: number, what: string): Promise<void> {
  const left = await readAt(a, offset, length);
  const right = await readAt(b, offset, length);
  t.ok(left.equals(right), `${what}: bytes ${offset}-${offset + length - 1} identical`);
}

async function sgdiskVerify(image: string): Promise<string> {
  return run('sgdisk', ['-v', image]);
}

t.test('GPT onto a blank disk of the same size: identical dump and identical table bytes', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { target, writes } = await restoreOnto(directory, image, SOURCE);
  t.equal(await dumpOf(target), await dumpOf(image), 'sfdisk --dump is identical');
  await sameBytes(t, image, target, 0, SECTOR, 'protective MBR');
  await sameBytes(t, image, target, SECTOR, 33 * SECTOR, 'primary header and entries');
  await sameBytes(t, image, target, SOURCE.size - 33 * SECTOR, 33 * SECTOR, 'backup entries and header');
  t.same(
    writes.map((write) => write.offset),
    [SOURCE.size - 33 * SECTOR, SOURCE.size - SECTOR, 2 * SECTOR, SECTOR, 0],
    'the protective MBR is written last',
  );

  // Without the captured sector 0, a protective MBR of our own: still a valid GPT disk.
  const directory2 = await tempDir(t);
  const bare = await restoreOnto(directory2, image, SOURCE, { keepFirstSector: false });
  t.equal(await dumpOf(bare.target), await dumpOf(image));
  await sameBytes(t, image, bare.target, SECTOR, 33 * SECTOR, 'primary header and entries');
  t.match(await sgdiskVerify(bare.target), /No problems found/);
  t.same(
    (await sfdiskJson(bare.target, 'dos')).partitions.map((entry) => [entry.start, entry.size, entry.type]),
    [[1, SOURCE.size / SECTOR - 1, 'ee']],
    'one 0xEE entry over the whole disk',
  );
});

t.test('GPT onto a disk twice the size: the backup moves to the new end', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { target, fitted, table } = await restoreOnto(directory, image, TWICE);
  const withoutLastLba = (dump: string) => dump.replace(/^last-lba: \d+$/m, 'last-lba: X');
  t.equal(
    withoutLastLba(await dumpOf(target)),
    withoutLastLba(await dumpOf(image)),
    'sfdisk --dump equal apart from last-lba',
  );
  t.equal((await sfdiskJson(target)).lastlba, TWICE.size / SECTOR - 34, 'last usable LBA at the new end');
  t.match(await sgdiskVerify(target), /No problems found/, 'sgdisk -v finds no problem');
  const backup = await readAt(target, TWICE.size - SECTOR, SECTOR);
  t.equal(backup.toString('latin1', 0, 8), 'EFI PART', 'a backup header in the last sector');
  t.equal(Number(backup.readBigUInt64LE(24)), TWICE.size / SECTOR - 1, 'which says it is in the last sector');
  const reread = await readImageTable(target);
  t.same(reread.warnings, [], 'read back without warnings');
  t.same(reread.table, fitted, 'read back as the fitted table');
  t.same(fitted.partitions, table.partitions, 'the partitions are unchanged');
});

t.test('GPT grown onto a larger disk: the last partition ends where sfdisk would end it', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { target, fitted } = await restoreOnto(directory, image, TWICE, { grow: true });
  // The oracle: sfdisk writing the same table on the larger disk, with no size for the last partition.
  const script = (await dumpOf(image))
    .replace(/^last-lba: \d+\n/m, '')
    .replace(/^(DISK4 : start=\s*\d+), size=\s*\d+,/m, '$1,');
  const expected = await makeImageFile(path.join(directory, 'expected.img'), TWICE.size);
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', expected], {
    input: script.split('DISK').join(expected),
  });
  t.equal(await dumpOf(target), await dumpOf(expected), 'identical to the table sfdisk makes');
  const last = (await sfdiskJson(target)).partitions[3]!;
  t.equal(((last.start + last.size) * SECTOR) % MiB, 0, 'the last partition ends on a MiB boundary');
  t.equal((last.start + last.size) * SECTOR, TWICE.size - MiB, 'the last whole MiB before the backup GPT');
  t.equal(fitted.partitions[3]!.size, last.size * SECTOR, 'the fitted table says the same');
  t.match(await sgdiskVerify(target), /No problems found/);
});

t.test('MBR onto a blank disk: identical tables, boot code kept, EBRs rewritten', async (t) => {
  const directory = await tempDir(t);
  const image = await mbrDisk(directory);
  const { target, table, writes } = await restoreOnto(directory, image, SOURCE);
  t.equal(await dumpOf(target), await dumpOf(image), 'sfdisk --dump is identical');
  await sameBytes(t, image, target, 0, SECTOR, 'sector 0 with its boot code');
  for (const logical of table.partitions.filter((partition) => partition.kind === 'logical')) {
    await sameBytes(t, image, target, logical.ebrOffset!, SECTOR, `EBR of partition ${logical.number}`);
  }
  t.equal(writes[writes.length - 1]!.offset, 0, 'sector 0 is written last');
  t.equal(writes.length, 3, 'sector 0 and two EBRs');

  // Without the captured sector: the same entries (CHS values included), zeros for boot code.
  const directory2 = await tempDir(t);
  const bare = await restoreOnto(directory2, image, SOURCE, { keepFirstSector: false });
  t.equal(await dumpOf(bare.target), await dumpOf(image));
  await sameBytes(t, image, bare.target, 446, 66, 'the four entries and the signature');
  t.ok((await readAt(bare.target, 0, 440)).equals(Buffer.alloc(440)), 'no boot code');
});

t.test('MBR onto a disk twice the size, then grown', async (t) => {
  const directory = await tempDir(t);
  const image = await mbrDisk(directory);
  const plain = await restoreOnto(directory, image, TWICE);
  t.equal(await dumpOf(plain.target), await dumpOf(image), 'sfdisk --dump is identical');
  t.match(await run('sfdisk', ['--verify', plain.target]), /No errors detected/);

  const directory2 = await tempDir(t);
  const grown = await restoreOnto(directory2, image, TWICE, { grow: true });
  // The oracle: sfdisk growing the extended partition, then the last logical one, to the end.
  const expected = path.join(directory2, 'expected.img');
  await fs.copyFile(image, expected);
  await fs.truncate(expected, TWICE.size);
  for (const number of ['2', '6'])
    await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '-N', number, expected], { input: ', +' });
  t.equal(await dumpOf(grown.target), await dumpOf(expected), 'identical to sfdisk growing partitions 2 and 6');
  const partitions = (await sfdiskJson(grown.target)).partitions;
  for (const node of ['2', '6']) {
    const partition = partitions.find((candidate) => candidate.node.endsWith(node))!;
    t.equal((partition.start + partition.size) * SECTOR, TWICE.size, `partition ${node} ends at the end of the disk`);
  }
  t.match(await run('sfdisk', ['--verify', grown.target]), /No errors detected/);
  const reread = await readImageTable(grown.target);
  t.same(reread, { table: grown.fitted, warnings: [] }, 'read back as the fitted table');

  // A primary partition last on the disk grows alone.
  const directory3 = await tempDir(t);
  const primaryLast = await makeImageFile(path.join(directory3, 'primary.img'), SOURCE.size);
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', primaryLast], {
    input: 'label: dos\nsize=8MiB, type=7\nsize=20MiB, type=83\n',
  });
  const primary = await restoreOnto(directory3, primaryLast, TWICE, { grow: true });
  const end = (await sfdiskJson(primary.target)).partitions[1]!;
  t.equal((end.start + end.size) * SECTOR, TWICE.size, 'the last primary partition ends at the end of the disk');
});

t.test('hybrid MBR: written back entry by entry', async (t) => {
  const directory = await tempDir(t);
  const image = await hybridDisk(directory);
  const same = await restoreOnto(directory, image, SOURCE);
  await sameBytes(t, image, same.target, 0, SECTOR, 'the hybrid MBR');
  t.equal(
    await dumpOf(same.target, 'dos'),
    await dumpOf(image, 'dos'),
    'sfdisk --label-nested dos --dump is identical',
  );
  t.equal(await dumpOf(same.target), await dumpOf(image));

  const directory2 = await tempDir(t);
  const bare = await restoreOnto(directory2, image, TWICE, { keepFirstSector: false });
  await sameBytes(t, image, bare.target, 446, 66, 'the hybrid entries and signature, CHS values included');
  t.equal(await dumpOf(bare.target, 'dos'), await dumpOf(image, 'dos'), 'the same hybrid entries on the larger disk');
  t.match(await sgdiskVerify(bare.target), /No problems found/);
  t.equal((await readImageTable(bare.target)).table.pmbr, 'hybrid');
});

t.test('wiping the signatures leaves a disk with no partition table', async (t) => {
  const directory = await tempDir(t);
  for (const image of [await gptDisk(directory), await mbrDisk(directory)]) {
    const bootCode = await readAt(image, 0, 440);
    await applyImageWrites(image, wipeTableSignatures(SOURCE));
    await t.rejects(
      run('sfdisk', ['--dump', image]),
      /does not contain a recognized partition table/,
      `${path.basename(image)}: sfdisk finds no table`,
    );
    t.equal(await run('blkid', ['-p', '-o', 'export', image]).catch(() => ''), '', 'blkid finds nothing');
    t.same(await readImageTable(image), { table: { type: 'none', partitions: [] }, warnings: [] });
    t.ok((await readAt(image, 0, 440)).equals(bootCode), 'boot code untouched');
  }
});

t.test('a whole restore: gaps written with the signatures masked, the table last', async (t) => {
  const directory = await tempDir(t);
  for (const image of [await gptDisk(directory), await mbrDisk(directory)]) {
    const { table } = await readImageTable(image);
    const target = await makeImageFile(path.join(directory, `restored-${path.basename(image)}`), SOURCE.size);
    await applyImageWrites(target, wipeTableSignatures(SOURCE));
    // The gaps hold the old table; written first, masked, they must not make a partitioned disk.
    for (const gap of diskLayout(table, SOURCE.size).gaps) {
      await applyImageWrites(target, [
        {
          offset: gap.offset,
          bytes: maskTableSignatures(SOURCE, gap.offset, await readAt(image, gap.offset, gap.size)),
        },
      ]);
    }
    await t.rejects(
      run('sfdisk', ['--dump', target]),
      /does not contain a recognized partition table/,
      `${path.basename(image)}: no table before the table is written`,
    );
    t.same((await readImageTable(target)).table, { type: 'none', partitions: [] });
    const { writes } = restoreTableWrites(table, SOURCE, SOURCE, { firstSector: await readAt(image, 0, SECTOR) });
    await applyImageWrites(target, writes);
    t.equal(await dumpOf(target), await dumpOf(image), `${path.basename(image)}: the table is back`);
    t.ok(
      (await fs.readFile(target)).equals(await fs.readFile(image)),
      `${path.basename(image)}: the restored disk is byte for byte the source`,
    );
  }
});

t.test('targets that cannot take the table are refused', async (t) => {
  const directory = await tempDir(t);
  const { table: gpt } = await readImageTable(await gptDisk(directory));
  const { table: mbr } = await readImageTable(await mbrDisk(directory));
  t.throws(() => restoreTableWrites(gpt, SOURCE, { size: 48 * MiB, sectorSize: SECTOR }), UnsafeTargetError);
  t.throws(
    () => restoreTableWrites(gpt, SOURCE, { size: 48 * MiB, sectorSize: SECTOR }),
    /partition 4 \(bytes 27262976-66060287\) does not fit on the 50331648-byte target disk/,
  );
  t.throws(
    () => restoreTableWrites(mbr, SOURCE, { size: 48 * MiB, sectorSize: SECTOR }),
    /extended partition|partition 2 .* does not fit/,
  );
  // Partition 4 ends at 63 MiB: 16 KiB more is too little room for the 33 sectors of the backup GPT.
  t.throws(
    () => restoreTableWrites(gpt, SOURCE, { size: 63 * MiB + 16384, sectorSize: SECTOR }),
    /partition 4 .* does not fit .* LBA 2048-129022 /,
  );
  t.doesNotThrow(
    () => restoreTableWrites(gpt, SOURCE, { size: 63 * MiB + 33 * SECTOR, sectorSize: SECTOR }),
    'exactly enough room',
  );
  const odd = {
    ...mbr,
    partitions: mbr.partitions.map((partition) =>
      partition.number === 1 ? { ...partition, start: partition.start + 512 } : partition,
    ),
  };
  t.throws(
    () => restoreTableWrites(odd, SOURCE, { size: 64 * MiB, sectorSize: 4096 }),
    /start \(byte 1049088\) is not on a 4096-byte sector boundary/,
  );
});

t.test('a GPT captured with 512-byte sectors restored onto a disk with 4096-byte sectors', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { table } = await readImageTable(image);
  const targetImage = await makeImageFile(path.join(directory, 'target4k.img'), TWICE.size);
  const device = await attachLoop4k(t, targetImage);
  const target = { size: TWICE.size, sectorSize: 4096 };
  const handle = await fs.open(device, 'r+');
  const { writes } = restoreTableWrites(table, SOURCE, target, { firstSector: await readAt(image, 0, SECTOR) });
  for (const write of [...wipeTableSignatures(target), ...writes])
    await handle.write(write.bytes, 0, write.bytes.length, write.offset);
  await handle.close();
  const oracle = await sfdiskJson(device);
  t.equal(oracle.sectorsize, 4096);
  t.same(
    oracle.partitions.map((partition) => [
      partition.start * 4096,
      partition.size * 4096,
      partition.type.toLowerCase(),
      partition.uuid!.toLowerCase(),
      partition.name,
    ]),
    table.partitions.map((partition) => [
      partition.start,
      partition.size,
      partition.type,
      partition.guid,
      partition.name,
    ]),
    'the same byte ranges, types, GUIDs and names',
  );
  t.match(await run('sfdisk', ['--verify', device]), /No errors detected/);
  const { reader, close } = await DeviceBlockReader.open(device);
  const reread = await readPartitionTable(reader, 4096);
  await close();
  t.same(reread.warnings, []);
  t.same(reread.table.partitions, table.partitions);
});
