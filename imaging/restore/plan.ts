// What a restore will do, decided before a byte is written: which disk of the image, the
// partition table as it will be on the target, how each volume is written, and which
// partition grows. Plain data, so it can be printed and tested without touching a disk.
import { NotFoundError } from '../../src/core/errors.js';
import type { Disk, Manifest, Partition, PartitionTable, Volume } from '../../src/format/manifest.js';
import type { DeviceInfo } from '../device.js';
import { restoreTableWrites, wipeTableSignatures, type DiskGeometry, type DiskWrite } from '../partition/write.js';
import { checkTargetFits } from './safety.js';

export interface PlanInput {
  imageId: string;
  disk: Disk;
  target: DeviceInfo;
  /** The target was created for this restore: there is nothing on it to confirm erasing. */
  fresh: boolean;
  grow?: boolean;
  zeroUnused?: boolean;
  /** The captured sector 0, whose boot code and disk signature the new table keeps. */
  firstSector?: Buffer;
}

export interface PlannedVolume {
  volume: Volume;
  /** Zeros the image holds for this volume are written, not skipped. */
  writeHoles: boolean;
  /** Table signatures in its bytes are held back until the table is written last. */
  maskSignatures: boolean;
}

export interface GrowStep {
  volume: Volume;
  /** The partition as captured, then as it will be on the target. */
  from: Partition;
  to: Partition;
}

export interface RestorePlan {
  imageId: string;
  disk: Disk;
  target: DeviceInfo;
  confirmErase: boolean;
  geometry: DiskGeometry;
  /** The table fitted to the target and its bytes; null for a disk without a table. */
  table: { table: PartitionTable; writes: DiskWrite[] } | null;
  /** Areas the restore rewrites for the target: gaps are compared with these left out. */
  tableAreas: DiskWrite[];
  volumes: PlannedVolume[];
  /** Growing was asked for; `grow` says whether the target leaves room to. */
  growRequested: boolean;
  grow: GrowStep | null;
  bytesTotal: number;
}

export function pickDisk(manifest: Manifest, id?: string): Disk {
  const disk = id
    ? manifest.disks.find((candidate) => candidate.id === id || candidate.source === id)
    : manifest.disks[0];
  if (!disk)
    throw new NotFoundError(
      `image ${manifest.id} has no disk ${id}; it has ${manifest.disks.map((candidate) => `${candidate.id} (${candidate.source})`).join(', ')}`,
    );
  return disk;
}

/** Decides the restore; throws UnsafeTargetError when the target cannot take the disk. */
export function planRestore(input: PlanInput): RestorePlan {
  const { disk, target } = input;
  checkTargetFits(target, disk);
  const geometry: DiskGeometry = { size: target.size, sectorSize: target.logicalSectorSize };
  const table = fitTable(disk, geometry, input);
  return {
    imageId: input.imageId,
    disk,
    target,
    confirmErase: !input.fresh && !(target.kind === 'file' && target.size === 0),
    geometry,
    table,
    tableAreas: [...wipeTableSignatures(geometry), ...(table?.writes ?? [])],
    volumes: disk.volumes.map((volume) => ({
      volume,
      // Zeros that are data (raw volumes) must reach a device; unused blocks need not.
      writeHoles: target.kind === 'block-device' && (volume.method === 'raw' || (input.zeroUnused ?? false)),
      maskSignatures: volume.kind === 'gap' || volume.kind === 'disk',
    })),
    growRequested: input.grow ?? false,
    grow: input.grow && table ? growStep(disk, table.table) : null,
    bytesTotal: disk.volumes.reduce((sum, volume) => sum + volume.size, 0),
  };
}

function fitTable(disk: Disk, geometry: DiskGeometry, input: PlanInput): RestorePlan['table'] {
  if (disk.partitionTable.type === 'none') return null;
  const source: DiskGeometry = { size: disk.size, sectorSize: disk.logicalSectorSize };
  return restoreTableWrites(disk.partitionTable, source, geometry, {
    growLastPartition: input.grow ?? false,
    ...(input.firstSector ? { firstSector: input.firstSector } : {}),
  });
}

/** The partition that ends last, when fitting made it larger, and the volume on it. */
function growStep(disk: Disk, fitted: PartitionTable): GrowStep | null {
  const last = [...fitted.partitions]
    .filter((partition) => partition.kind !== 'extended')
    .sort((a, b) => b.start + b.size - (a.start + a.size))[0];
  if (!last) return null;
  const from = disk.partitionTable.partitions.find((partition) => partition.number === last.number);
  const volume = disk.volumes.find((candidate) => candidate.partitionNumber === last.number);
  if (!from || !volume || last.size <= from.size) return null;
  return { volume, from, to: last };
}

/** The gap at the start of the disk, which holds the captured sector 0, if the image has one. */
export function firstGapOf(disk: Disk): Volume | undefined {
  return disk.volumes.find((volume) => volume.kind === 'gap' && volume.offset === 0);
}
