// How a disk divides into what a capture reads: the data partitions, and the gaps
// between them that hold boot code, partition tables, EBRs and the backup GPT. Gaps
// are kept byte for byte, so that whatever a boot loader hid there comes back.
import { FormatError } from '../../src/core/errors.js';
import type { Partition, PartitionTable } from '../../src/format/manifest.js';

export interface Gap {
  offset: number;
  size: number;
}

export interface DiskLayout {
  /** Partitions holding data, by start: extended containers left out, logical partitions in. */
  partitions: Partition[];
  /** Everything else on the disk, in order. */
  gaps: Gap[];
}

const describe = (partition: Partition) =>
  `${partition.kind === 'extended' ? 'extended partition' : 'partition'} ${partition.number} (bytes ${partition.start}-${partition.start + partition.size - 1})`;

export function diskLayout(table: PartitionTable, diskSize: number): DiskLayout {
  const containers = table.partitions.filter((partition) => partition.kind === 'extended');
  const partitions = table.partitions
    .filter((partition) => partition.kind !== 'extended' && partition.size > 0)
    .sort((a, b) => a.start - b.start || a.number - b.number);
  for (const partition of [...partitions, ...containers]) {
    if (partition.start < 0 || partition.start + partition.size > diskSize)
      throw new FormatError(`${describe(partition)} ends past the end of the ${diskSize}-byte disk`);
  }
  for (let index = 1; index < partitions.length; index++) {
    const previous = partitions[index - 1]!;
    const current = partitions[index]!;
    if (current.start < previous.start + previous.size)
      throw new FormatError(`${describe(previous)} and ${describe(current)} overlap`);
  }
  for (const container of containers) {
    for (const partition of partitions) {
      const overlaps =
        partition.start < container.start + container.size && container.start < partition.start + partition.size;
      if (partition.kind === 'primary' && overlaps)
        throw new FormatError(`${describe(partition)} and ${describe(container)} overlap`);
    }
  }
  // Restoring a table writes every EBR: one inside a partition would overwrite its data.
  for (const logical of partitions) {
    if (logical.ebrOffset === undefined) continue;
    const host = partitions.find(
      (partition) => partition.start <= logical.ebrOffset! && logical.ebrOffset! < partition.start + partition.size,
    );
    if (host)
      throw new FormatError(
        `the EBR of partition ${logical.number} at byte ${logical.ebrOffset} lies inside ${describe(host)}`,
      );
  }
  const gaps: Gap[] = [];
  let position = 0;
  for (const partition of partitions) {
    if (partition.start > position) gaps.push({ offset: position, size: partition.start - position });
    position = partition.start + partition.size;
  }
  if (diskSize > position) gaps.push({ offset: position, size: diskSize - position });
  return { partitions, gaps };
}
