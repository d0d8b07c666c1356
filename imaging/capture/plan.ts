// Plans what to read from a disk. The raw plan treats the whole disk as one volume:
// every byte is kept, all-zero chunks become holes, holes of sparse files are not read.
import type fsp from 'node:fs/promises';
import { chunkSizeFor } from '../../src/format/chunk.js';
import { dataRanges, type DeviceInfo } from '../device.js';
import type { DiskPlan } from './image.js';

export function rawDiskPlan(device: DeviceInfo, handle: fsp.FileHandle, chunkSize: number | 'auto', id = 'disk0'): DiskPlan {
  return {
    id,
    source: device.path,
    sourceKind: device.kind,
    size: device.size,
    logicalSectorSize: device.logicalSectorSize,
    physicalSectorSize: device.physicalSectorSize,
    model: device.model,
    serial: device.serial,
    partitionTable: { type: 'none', partitions: [] },
    volumes: [
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
    ],
  };
}
