// Reading partition tables made by sfdisk and sgdisk, compared field by field with
// what sfdisk, sgdisk and the kernel say about the same disks.
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Partition, PartitionTable } from '../../../src/format/manifest.js';
import { parseManifest } from '../../../src/format/manifest.js';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { readPartitionTable } from '../../../imaging/partition/table.js';
import { makeImageFile, run, readAt } from '../../helpers/disk.js';
import { sampleManifest } from '../../helpers/manifest.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  attachLoop4k,
  attributesFromSfdisk,
  gptDisk,
  GPT_SCRIPT,
  hybridDisk,
  mbrDisk,
  MiB,
  partitionNumberOf,
  readImageTable,
  sfdiskJson,
  writeBytes,
  type SfdiskTable,
} from './disks.js';

function compareGpt(t: Test, table: PartitionTable, oracle: SfdiskTable, sectorSize: number): void {
  t.equal(table.type, 'gpt');
  t.equal(oracle.label, 'gpt');
  t.equal(oracle.sectorsize, sectorSize);
  t.equal(table.diskGuid, oracle.id.toLowerCase(), 'disk GUID');
  t.equal(table.firstUsableLba, oracle.firstlba, 'first usable LBA');
  t.equal(table.lastUsableLba, oracle.lastlba, 'last usable LBA');
  t.equal(table.partitions.length, oracle.partitions.length, 'as many partitions as sfdisk lists');
  for (const expected of oracle.partitions) {
    const number = partitionNumberOf(expected.node);
    const partition = table.partitions.find((candidate) => candidate.number === number);
    t.ok(partition, `partition ${number} is read`);
    if (!partition) continue;
    t.same(
      {
        kind: partition.kind,
        start: partition.start,
        size: partition.size,
        type: partition.type,
        guid: partition.guid,
        name: partition.name,
        attributes: BigInt(partition.attributes!),
      },
      {
        kind: 'primary',
        start: expected.start * sectorSize,
        size: expected.size * sectorSize,
        type: expected.type.toLowerCase(),
        guid: expected.uuid!.toLowerCase(),
        name: expected.name ?? '',
        attributes: attributesFromSfdisk(expected.attrs),
      },
      `partition ${number} matches sfdisk`,
    );
    t.match(partition.attributes, /^0x[0-9a-f]{16}$/);
  }
}

function compareMbrEntries(t: Test, partitions: Partition[], oracle: SfdiskTable, sectorSize: number): void {
  t.equal(partitions.length, oracle.partitions.length, 'as many partitions as sfdisk lists');
  for (const expected of oracle.partitions) {
    const number = partitionNumberOf(expected.node);
    const partition = partitions.find((candidate) => candidate.number === number);
    t.ok(partition, `partition ${number} is read`);
    if (!partition) continue;
    const type = parseInt(expected.type, 16);
    t.same(
      { start: partition.start, size: partition.size, type: partition.type, bootable: partition.bootable },
      {
        start: expected.start * sectorSize,
        size: expected.size * sectorSize,
        type: `0x${type.toString(16).padStart(2, '0')}`,
        bootable: expected.bootable === true,
      },
      `partition ${number} matches sfdisk`,
    );
    t.equal(
      partition.kind,
      number >= 5 ? 'logical' : [0x05, 0x0f, 0x85].includes(type) ? 'extended' : 'primary',
      `partition ${number} kind`,
    );
  }
}

/** libblkid's own parser (through partx) as a second oracle: numbers, places, types, flags. */
async function compareWithBlkid(t: Test, image: string, table: PartitionTable, sectorSize = 512): Promise<void> {
  const stdout = await run('partx', ['--show', '--noheadings', '--output', 'NR,START,SECTORS,TYPE,FLAGS', image]);
  const rows = stdout.split('\n').map((line) => line.trim().split(/\s+/));
  t.same(
    rows.map(([number, start, sectors, type, flags]) => ({
      number: Number(number),
      start: Number(start) * sectorSize,
      size: Number(sectors) * sectorSize,
      type,
      flags: BigInt(flags!),
    })),
    table.partitions.map((partition) => ({
      number: partition.number,
      start: partition.start,
      size: partition.size,
      type: table.type === 'gpt' ? partition.type : `0x${parseInt(partition.type, 16).toString(16)}`,
      flags: table.type === 'gpt' ? BigInt(partition.attributes!) : partition.bootable ? 0x80n : 0n,
    })),
    'libblkid (partx --show) agrees',
  );
}

/** The table goes into a manifest: it must pass the manifest's own schema. */
function assertValidInManifest(t: Test, table: PartitionTable): void {
  const manifest = sampleManifest();
  manifest.disks[0]!.partitionTable = table;
  t.doesNotThrow(
    () => parseManifest(JSON.parse(JSON.stringify(manifest))),
    'the table validates as part of a manifest',
  );
}

t.test('GPT with BIOS boot, EFI system, swap and Linux partitions', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { table, warnings } = await readImageTable(image);
  t.same(warnings, [], 'no warnings for a clean disk');
  compareGpt(t, table, await sfdiskJson(image), 512);
  await compareWithBlkid(t, image, table);
  t.equal(table.pmbr, 'protective');
  t.equal(table.hybridMbr, undefined);
  t.equal(table.partitions[0]!.type, '21686148-6449-6e6f-744e-656564454649', 'BIOS boot type');
  t.equal(table.partitions[1]!.attributes, '0x0000000000000001', 'RequiredPartition is bit 0');
  t.equal(table.partitions[3]!.attributes, '0x1000000000000004', 'LegacyBIOSBootable is bit 2, GUID:60 is bit 60');
  t.equal(table.partitions[3]!.name, 'root fs');

  const sgdisk = await run('sgdisk', ['-p', image]);
  t.equal(table.entryCount, Number(/holds up to (\d+) entries/.exec(sgdisk)![1]), 'entry count as sgdisk says');
  t.equal(
    table.entriesLba,
    Number(/Main partition table begins at sector (\d+)/.exec(sgdisk)![1]),
    'entry array LBA as sgdisk says',
  );
  t.equal(table.entrySize, 128);
  assertValidInManifest(t, table);
});

t.test('MBR with a primary NTFS partition, an extended partition and two logical ones', async (t) => {
  const directory = await tempDir(t);
  const image = await mbrDisk(directory);
  const { table, warnings } = await readImageTable(image);
  t.same(warnings, []);
  const oracle = await sfdiskJson(image);
  t.equal(table.type, 'mbr');
  t.equal(oracle.label, 'dos');
  t.equal(`0x${table.diskId}`, oracle.id, 'disk identifier');
  compareMbrEntries(t, table.partitions, oracle, 512);
  t.same(
    table.partitions.map((partition) => partition.number),
    [1, 2, 5, 6],
    'logical partitions are numbered from 5 in chain order',
  );

  // Each logical partition's EBR: a signed sector whose first entry points at the partition.
  for (const logical of table.partitions.filter((partition) => partition.kind === 'logical')) {
    const ebr = await readAt(image, logical.ebrOffset!, 512);
    t.equal(ebr.readUInt16LE(510), 0xaa55, `partition ${logical.number}: a signed EBR at byte ${logical.ebrOffset}`);
    t.equal(
      logical.ebrOffset! + ebr.readUInt32LE(446 + 8) * 512,
      logical.start,
      `partition ${logical.number}: its EBR points at it`,
    );
  }
  const extended = table.partitions.find((partition) => partition.kind === 'extended')!;
  t.equal(
    table.partitions.find((partition) => partition.number === 5)!.ebrOffset,
    extended.start,
    "the first EBR is the extended partition's first sector",
  );

  await compareWithBlkid(t, image, table);
  assertValidInManifest(t, table);
});

t.test('extended partitions of type 0x0f and 0x85 hold logical partitions too', async (t) => {
  const directory = await tempDir(t);
  const image = await mbrDisk(directory);
  for (const type of [0x0f, 0x85]) {
    // Partition 2 is the extended one: its type byte is the fifth of the second entry.
    await writeBytes(image, 446 + 16 + 4, Buffer.from([type]));
    const { table, warnings } = await readImageTable(image);
    t.same(warnings, []);
    compareMbrEntries(t, table.partitions, await sfdiskJson(image), 512);
    t.same(
      table.partitions.map((partition) => `${partition.number}:${partition.kind}`),
      ['1:primary', '2:extended', '5:logical', '6:logical'],
      `type 0x${type.toString(16)}`,
    );
  }
});

t.test('hybrid MBR made by sgdisk -h is recorded entry by entry', async (t) => {
  const directory = await tempDir(t);
  const image = await hybridDisk(directory);
  const { table, warnings } = await readImageTable(image);
  t.same(warnings, []);
  compareGpt(t, table, await sfdiskJson(image), 512);
  t.equal(table.pmbr, 'hybrid');
  const nested = await sfdiskJson(image, 'dos');
  compareMbrEntries(t, table.hybridMbr!, nested, 512);
  t.equal(table.hybridMbr!.find((entry) => entry.type === '0xee')?.number, 1, 'the 0xEE entry is in slot 1');
  t.same(
    table.hybridMbr!.slice(1).map((entry) => entry.start),
    [table.partitions[1]!.start, table.partitions[2]!.start],
    'the hybrid entries are GPT partitions 2 and 3',
  );
  assertValidInManifest(t, table);
});

t.test('disks without a partition table', async (t) => {
  const directory = await tempDir(t);
  const blank = await makeImageFile(path.join(directory, 'blank.img'), 16 * MiB);
  const sfdiskSays = await run('sfdisk', ['--dump', blank]).then(
    () => 'a table',
    (error: Error) => error.message,
  );
  t.match(sfdiskSays, /does not contain a recognized partition table/, 'sfdisk finds no table either');
  t.same(await readImageTable(blank), { table: { type: 'none', partitions: [] }, warnings: [] });

  // Filesystems written to the whole disk end their boot sector with 0x55AA too.
  const fat = await makeImageFile(path.join(directory, 'fat.img'), 16 * MiB);
  await run('mkfs.fat', ['-F', '32', fat]);
  t.same(
    await readImageTable(fat),
    { table: { type: 'none', partitions: [] }, warnings: [] },
    'a whole-disk FAT32 filesystem is no partition table',
  );
  const ntfs = await makeImageFile(path.join(directory, 'ntfs.img'), 16 * MiB);
  await run('mkntfs', ['--fast', '--force', ntfs]);
  t.same(
    (await readImageTable(ntfs)).table,
    { type: 'none', partitions: [] },
    'a whole-disk NTFS filesystem is no partition table',
  );

  const tiny = await makeImageFile(path.join(directory, 'tiny.img'), 100);
  t.same((await readImageTable(tiny)).table, { type: 'none', partitions: [] }, 'a disk smaller than a sector');
});

t.test('GPT on a disk with 4096-byte sectors', async (t) => {
  const directory = await tempDir(t);
  const image = await makeImageFile(path.join(directory, 'gpt4k.img'), 64 * MiB);
  const device = await attachLoop4k(t, image);
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', device], { input: GPT_SCRIPT });
  const { reader, close } = await DeviceBlockReader.open(device);
  const { table, warnings } = await readPartitionTable(reader, 4096);
  await close();
  t.same(warnings, []);
  compareGpt(t, table, await sfdiskJson(device), 4096);
  t.equal(table.entriesLba, 2);

  // The same bytes read as if the sectors were 512 bytes: the error says what happened.
  await t.rejects(readImageTable(image, 512), {
    name: 'FormatError',
    message: /no usable GPT.*written for 4096-byte sectors/,
  });
});
