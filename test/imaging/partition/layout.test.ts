// Disk layouts: data partitions and every gap, checked against the partitions sfdisk
// lists (gaps computed here independently, as the complement of those partitions).
import t from 'tap';
import type { PartitionTable } from '../../../src/format/manifest.js';
import { diskLayout } from '../../../imaging/partition/layout.js';
import { tempDir } from '../../helpers/tmp.js';
import { gptDisk, mbrDisk, MiB, readImageTable, sfdiskJson } from './disks.js';

const DISK = 64 * MiB;

/** Gaps as the complement of sfdisk's data partitions (extended containers left out). */
async function expectedGaps(image: string): Promise<{ offset: number; size: number }[]> {
  const oracle = await sfdiskJson(image);
  const data = oracle.partitions
    .filter((partition) => !['5', 'f', '85'].includes(partition.type))
    .map((partition) => [partition.start * 512, (partition.start + partition.size) * 512] as const);
  const gaps: { offset: number; size: number }[] = [];
  let position = 0;
  for (const [start, end] of [...data].sort((a, b) => a[0] - b[0])) {
    if (start > position) gaps.push({ offset: position, size: start - position });
    position = end;
  }
  if (position < DISK) gaps.push({ offset: position, size: DISK - position });
  return gaps;
}

t.test('GPT layout: the gap before the first partition and the backup GPT at the end', async (t) => {
  const directory = await tempDir(t);
  const image = await gptDisk(directory);
  const { table } = await readImageTable(image);
  const layout = diskLayout(table, DISK);
  t.same(
    layout.partitions.map((partition) => partition.number),
    [1, 2, 3, 4],
  );
  t.same(layout.gaps, await expectedGaps(image));
  t.same(layout.gaps, [
    { offset: 0, size: 1 * MiB },
    { offset: 63 * MiB, size: 1 * MiB },
  ]);
  const covered =
    layout.partitions.reduce((sum, partition) => sum + partition.size, 0) +
    layout.gaps.reduce((sum, gap) => sum + gap.size, 0);
  t.equal(covered, DISK, 'partitions and gaps cover the disk exactly');
});

t.test('MBR layout: logical partitions in, the extended container out, EBR areas as gaps', async (t) => {
  const directory = await tempDir(t);
  const image = await mbrDisk(directory);
  const { table } = await readImageTable(image);
  const layout = diskLayout(table, DISK);
  t.same(
    layout.partitions.map((partition) => partition.number),
    [1, 5, 6],
  );
  t.same(layout.gaps, await expectedGaps(image));
  for (const logical of layout.partitions.filter((partition) => partition.kind === 'logical')) {
    t.ok(
      layout.gaps.some((gap) => gap.offset <= logical.ebrOffset! && logical.ebrOffset! + 512 <= gap.offset + gap.size),
      `the EBR of partition ${logical.number} is inside a gap`,
    );
  }
});

t.test('overlapping or impossible partitions are a FormatError', async (t) => {
  const gpt = (partitions: [number, number, number][]): PartitionTable => ({
    type: 'gpt',
    partitions: partitions.map(([number, start, size]) => ({
      number,
      kind: 'primary',
      start,
      size,
      type: '0fc63daf-8483-4772-8e79-3d69d8477de4',
    })),
  });
  t.throws(
    () =>
      diskLayout(
        gpt([
          [1, MiB, 10 * MiB],
          [2, 5 * MiB, 10 * MiB],
        ]),
        DISK,
      ),
    {
      name: 'FormatError',
      message: 'partition 1 (bytes 1048576-11534335) and partition 2 (bytes 5242880-15728639) overlap',
    },
  );
  t.throws(
    () =>
      diskLayout(
        gpt([
          [2, 5 * MiB, 10 * MiB],
          [1, 5 * MiB, 1 * MiB],
        ]),
        DISK,
      ),
    { name: 'FormatError', message: /partition 1 .* and partition 2 .* overlap/ },
    'same start',
  );
  t.throws(() => diskLayout(gpt([[1, MiB, DISK]]), DISK), {
    name: 'FormatError',
    message: 'partition 1 (bytes 1048576-68157439) ends past the end of the 67108864-byte disk',
  });
  t.same(diskLayout(gpt([]), DISK).gaps, [{ offset: 0, size: DISK }], 'no partitions: one gap');
  t.same(diskLayout({ type: 'none', partitions: [] }, DISK).gaps, [{ offset: 0, size: DISK }]);
  t.same(diskLayout(gpt([[1, 0, DISK]]), DISK).gaps, [], 'one partition over the whole disk: no gap');

  const mbr: PartitionTable = {
    type: 'mbr',
    partitions: [
      { number: 1, kind: 'primary', start: MiB, size: 10 * MiB, type: '0x83' },
      { number: 2, kind: 'extended', start: 8 * MiB, size: 20 * MiB, type: '0x05' },
    ],
  };
  t.throws(() => diskLayout(mbr, DISK), {
    name: 'FormatError',
    message: /partition 1 .* and extended partition 2 .* overlap/,
  });
  const ebrInside: PartitionTable = {
    type: 'mbr',
    partitions: [
      { number: 2, kind: 'extended', start: 10 * MiB, size: 20 * MiB, type: '0x05' },
      { number: 5, kind: 'logical', start: 11 * MiB, size: 4 * MiB, type: '0x83', ebrOffset: 10 * MiB },
      { number: 6, kind: 'logical', start: 16 * MiB, size: 4 * MiB, type: '0x83', ebrOffset: 12 * MiB },
    ],
  };
  t.throws(() => diskLayout(ebrInside, DISK), {
    name: 'FormatError',
    message: 'the EBR of partition 6 at byte 12582912 lies inside partition 5 (bytes 11534336-15728639)',
  });
});
