// Damaged tables: a bad primary GPT falls back to the backup, a missing backup is a
// warning, both bad is a FormatError with both reasons; EBR chains that loop or point
// outside their extended partition are refused; random damage never crashes the reader.
import fs from 'node:fs/promises';
import t, { type Test } from 'tap';
import { FormatError } from '../../../src/core/errors.js';
import { readPartitionTable } from '../../../imaging/partition/table.js';
import { tempDir } from '../../helpers/tmp.js';
import { gptDisk, mbrDisk, readImageTable, sfdiskJson, writeBytes } from './disks.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';
import { readAt } from '../../helpers/disk.js';

/** A disk in memory on which a read past the end is the reader's bug, not bad input. */
function memoryDisk(bytes: Buffer, description?: string): MemoryBlockReader {
  return new MemoryBlockReader(bytes, description, { outOfRangeIsBug: true });
}

const SECTOR = 512;

async function flipByte(image: string, offset: number): Promise<void> {
  const byte = await readAt(image, offset, 1);
  await writeBytes(image, offset, Buffer.from([byte[0]! ^ 0x5a]));
}

t.test('GPT: a damaged primary falls back to the backup, as sfdisk does', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { table: original } = await readImageTable(image);

  // One byte of the disk GUID in the primary header.
  await flipByte(image, SECTOR + 60);
  const header = await readImageTable(image);
  t.same(header.table, original, 'the backup gives the same table');
  t.equal(header.warnings.length, 1);
  t.match(
    header.warnings[0],
    /primary GPT header at LBA 1 is bad: header CRC32 mismatch.*backup GPT at LBA 131071 is used/,
  );
  t.equal((await sfdiskJson(image)).id.toLowerCase(), original.diskGuid, 'sfdisk also reads the backup');

  // The header restored, one byte of the primary entry array damaged instead.
  await flipByte(image, SECTOR + 60);
  await flipByte(image, 2 * SECTOR + 130);
  const entries = await readImageTable(image);
  t.same(entries.table, original);
  t.match(
    entries.warnings[0],
    /entries of the primary GPT header at LBA 1 \(LBA 2\) fail their CRC32.*backup GPT at LBA 131071 is used/,
  );
});

t.test('GPT: an image truncated so that the backup is gone still reads, with a warning', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { table: original } = await readImageTable(image);
  const lastPartitionEnd = Math.max(...original.partitions.map((partition) => partition.start + partition.size));
  await fs.truncate(image, lastPartitionEnd);
  const { table, warnings } = await readImageTable(image);
  t.same(table, original, 'the primary gives the whole table');
  t.match(warnings, [
    /backup GPT is unusable \(the backup GPT header at LBA 131071 is past the end of the 129024-sector disk; the backup GPT header at LBA 129023 is bad: no "EFI PART" signature\); the primary GPT is used/,
  ]);
});

t.test('GPT: both copies damaged is a FormatError naming both', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const size = (await fs.stat(image)).size;
  await flipByte(image, SECTOR + 60);
  await flipByte(image, size - SECTOR + 60);
  const error = await readImageTable(image).then(
    () => null,
    (caught: unknown) => caught,
  );
  t.type(error, FormatError);
  t.match(
    (error as Error).message,
    new RegExp(
      `^${image}: no usable GPT: the primary GPT header at LBA 1 is bad: header CRC32 mismatch .*; the backup GPT header at LBA 131071 is bad: header CRC32 mismatch`,
    ),
  );
});

t.test('GPT: a backup away from the end of a grown disk is found through the primary', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { table: original } = await readImageTable(image);
  await fs.truncate(image, 128 << 20);
  await flipByte(image, SECTOR + 60);
  // The primary is bad, so nothing says where the backup is; the last LBA holds none.
  await t.rejects(readImageTable(image), {
    name: 'FormatError',
    message: /backup GPT header at LBA 262143 is bad: no "EFI PART" signature/,
  });
  await flipByte(image, SECTOR + 60);
  const { table, warnings } = await readImageTable(image);
  t.same(table, original);
  t.match(warnings, [
    /backup GPT header is at LBA 131071, not at the last LBA 262143/,
    /protective MBR covers sectors 1-131071, not 1-262143/,
  ]);
});

/** The MBR image in memory, with the EBRs' places. */
async function mbrBytes(t: Test): Promise<{ bytes: Buffer; ebrs: number[] }> {
  const directory = await tempDir(t);
  const image = await mbrDisk(directory);
  const { table } = await readImageTable(image);
  const bytes = await fs.readFile(image);
  return {
    bytes,
    ebrs: table.partitions.filter((partition) => partition.kind === 'logical').map((partition) => partition.ebrOffset!),
  };
}

t.test('MBR: EBR chains that loop or leave their extended partition', async (t) => {
  const { bytes, ebrs } = await mbrBytes(t);
  const extendedStart = ebrs[0]!;
  const lastEbr = ebrs[ebrs.length - 1]!;
  const linkOffset = lastEbr + 446 + 16;

  // The last EBR links back to the first one.
  const loop = Buffer.from(bytes);
  loop[linkOffset + 4] = 0x05;
  loop.writeUInt32LE(0, linkOffset + 8);
  loop.writeUInt32LE(1, linkOffset + 12);
  await t.rejects(readPartitionTable(memoryDisk(loop, 'loop.img'), SECTOR), {
    name: 'FormatError',
    message: `loop.img: the EBR chain of extended partition 2 (bytes ${extendedStart}-${extendedStart + 40 * 1024 * 1024 - 1}) loops: it comes back to the EBR at byte ${extendedStart}`,
  });

  // The last EBR links to itself.
  const self = Buffer.from(loop);
  self.writeUInt32LE((lastEbr - extendedStart) / SECTOR, linkOffset + 8);
  await t.rejects(readPartitionTable(memoryDisk(self, 'self.img'), SECTOR), {
    name: 'FormatError',
    message: /loops: it comes back to the EBR at byte 20971520/,
  });

  // The last EBR links past the end of the extended partition.
  const outside = Buffer.from(loop);
  outside.writeUInt32LE(40 * 2048 + 10, linkOffset + 8);
  await t.rejects(readPartitionTable(memoryDisk(outside, 'outside.img'), SECTOR), {
    name: 'FormatError',
    message: /^outside\.img: the EBR at byte 20971520 links to an EBR at byte 51385344, outside extended partition 2/,
  });

  // An EBR without its signature ends the chain, with a warning.
  const unsigned = Buffer.from(bytes);
  unsigned.writeUInt16LE(0, lastEbr + 510);
  const read = await readPartitionTable(memoryDisk(unsigned), SECTOR);
  t.same(
    read.table.partitions.map((partition) => partition.number),
    [1, 2, 5],
  );
  t.match(read.warnings, [/EBR at byte 20971520 has no 0x55AA signature/]);
});

t.test('sector 0 and LBA 1 disagreeing', async (t) => {
  const { bytes: mbr } = await mbrBytes(t);
  const directory = await tempDir(t);
  const gpt = await fs.readFile(await gptDisk(directory));
  const { table: gptTable } = await readPartitionTable(memoryDisk(gpt), SECTOR);

  // A GPT whose protective MBR was zeroed: still a GPT, and the restore writes a protective MBR.
  const noPmbr = Buffer.from(gpt);
  noPmbr.fill(0, 0, SECTOR);
  const read = await readPartitionTable(memoryDisk(noPmbr), SECTOR);
  t.same(read.table, gptTable);
  t.match(read.warnings, [/sector 0 holds no protective MBR/]);

  // An MBR disk with an old GPT header left at LBA 1: the MBR rules, as for Linux and fdisk.
  const stale = Buffer.from(mbr);
  gpt.copy(stale, SECTOR, SECTOR, 2 * SECTOR);
  const staleRead = await readPartitionTable(memoryDisk(stale), SECTOR);
  t.equal(staleRead.table.type, 'mbr');
  t.same(
    staleRead.table.partitions.map((partition) => partition.number),
    [1, 2, 5, 6],
  );
  t.match(staleRead.warnings, [/GPT header at LBA 1 without a protective MBR is ignored/]);

  // Entries that cannot be a table (status bytes other than 0x00 and 0x80).
  const garbage = Buffer.from(mbr.subarray(0, 1 << 20));
  garbage[446] = 0x12;
  const garbageRead = await readPartitionTable(memoryDisk(garbage), SECTOR);
  t.same(garbageRead.table, { type: 'none', partitions: [] });
  t.match(garbageRead.warnings, [/MBR entry 1 has status byte 0x12/]);
});

t.test('random damage to the table areas: a table or a FormatError, never a crash', async (t) => {
  const { bytes: mbr, ebrs } = await mbrBytes(t);
  const directory = await tempDir(t);
  const gpt = await fs.readFile(await gptDisk(directory));
  let seed = 12345;
  const random = (limit: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % limit;
  };
  const gptAreas = [0, SECTOR, 2 * SECTOR, 3 * SECTOR, gpt.length - 33 * SECTOR, gpt.length - SECTOR];
  const mbrAreas = [0, ...ebrs];
  const outcomes = { table: 0, formatError: 0 };
  for (let round = 0; round < 3000; round++) {
    const [source, areas] = round % 2 === 0 ? [gpt, gptAreas] : [mbr, mbrAreas];
    // Damage in place and undo afterwards: copying a 64 MiB disk per round is slow.
    const undo: [number, number][] = [];
    for (let flips = 1 + random(4); flips > 0; flips--) {
      const area = areas[random(areas.length)]!;
      // Mostly the fields that matter: entries, header fields, CRCs.
      const offset = area + (area === 0 || ebrs.includes(area) ? 440 + random(72) : random(SECTOR));
      undo.unshift([offset, source[offset]!]);
      source[offset] = random(4) === 0 ? 0xff : random(256);
    }
    // Now and then the disk is also cut short.
    const length = random(8) === 0 ? random(source.length) : source.length;
    try {
      await readPartitionTable(memoryDisk(source.subarray(0, length)), SECTOR);
      outcomes.table++;
    } catch (error) {
      if (!(error instanceof FormatError)) {
        t.fail(`round ${round}: ${(error as Error).stack}`);
        return;
      }
      outcomes.formatError++;
    }
    for (const [offset, byte] of undo) source[offset] = byte;
  }
  t.ok(outcomes.table > 100 && outcomes.formatError > 100, `both outcomes happen (${JSON.stringify(outcomes)})`);
});
