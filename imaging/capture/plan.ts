// Plans what to read from a disk. The raw plan treats the whole disk as one volume:
// every byte is kept, all-zero chunks become holes, holes of sparse files are not read.
import type fsp from 'node:fs/promises';
import { chunkSizeFor } from '../../src/format/chunk.js';
import type { PartitionTable } from '../../src/format/manifest.js';
import { dataRanges, type DeviceInfo } from '../device.js';
import type { DiskPlan } from './image.js';
import type { VolumePlan } from './volume.js';

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
