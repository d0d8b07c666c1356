// The capture plan: what will be read from each disk, as the manifest's own disk and
// volume types minus what only reading can tell (index, digests, stats). The raw plan
// treats the whole disk as one volume: every byte is kept, all-zero chunks become holes.
import type fsp from 'node:fs/promises';
import { chunkSizeFor } from '../../src/format/chunk.js';
import type { Disk, PartitionTable, Volume } from '../../src/format/manifest.js';
import { dataRanges, type DeviceInfo } from '../device.js';
import type { RangeList } from '../ranges.js';

/** The manifest's volume fields known before reading: where, what, how and in what chunk size. */
export interface VolumePlan
  extends Pick<Volume, 'id' | 'kind' | 'partitionNumber' | 'offset' | 'size' | 'filesystem' | 'method' | 'chunkSize'> {
  /** Byte ranges of the volume worth reading; everything else is captured as zeros. */
  readable: RangeList;
  warnings: string[];
  /** Read the used-block map again (after a freeze flushed it). */
  refresh?: () => Promise<void>;
}

/** The manifest's disk with its volumes still to be read. */
export interface DiskPlan extends Omit<Disk, 'volumes'> {
  volumes: VolumePlan[];
  /** Things about the whole disk the user should know (a damaged table, LVM...). */
  warnings?: string[];
}

/** The manifest's record of a planned disk, once its volumes are captured. */
export function manifestDiskOf(plan: DiskPlan, volumes: Volume[]): Disk {
  const { volumes: _planned, warnings: _warnings, ...disk } = plan;
  return { ...disk, volumes };
}

/** The largest chunk of any volume: the size of the read buffers. */
export function largestChunkSize(disks: DiskPlan[]): number {
  return Math.max(...disks.flatMap((disk) => disk.volumes.map((volume) => volume.chunkSize)));
}

/** Bytes the capture will read, for progress. */
export function bytesToRead(disks: DiskPlan[]): number {
  return disks.reduce(
    (sum, disk) => sum + disk.volumes.reduce((inner, volume) => inner + volume.readable.totalBytes, 0),
    0,
  );
}

/** A disk plan: the device's identity, its table and the volumes to read. */
export function diskPlanOf(
  device: DeviceInfo,
  id: string,
  partitionTable: PartitionTable,
  volumes: VolumePlan[],
  warnings: string[] = [],
): DiskPlan {
  return {
    id,
    source: device.path,
    sourceKind: device.kind,
    size: device.size,
    logicalSectorSize: device.logicalSectorSize,
    physicalSectorSize: device.physicalSectorSize,
    model: device.model,
    serial: device.serial,
    partitionTable,
    volumes,
    warnings,
  };
}

export function rawDiskPlan(
  device: DeviceInfo,
  handle: fsp.FileHandle,
  chunkSize: number | 'auto',
  id = 'disk0',
): DiskPlan {
  return diskPlanOf(device, id, { type: 'none', partitions: [] }, [
    {
      id: 'disk',
      kind: 'disk',
      partitionNumber: null,
      offset: 0,
      size: device.size,
      filesystem: null,
      method: 'raw',
      chunkSize: chunkSize === 'auto' ? chunkSizeFor(device.size) : chunkSize,
      readable: dataRanges(handle.fd, device.kind, 0, device.size),
      warnings: [],
    },
  ]);
}
