// Plans the capture of a whole disk: its partition table, each partition through the
// filesystem module that recognises it (only used blocks are read), and every gap
// between partitions raw, so boot code, tables and hidden boot areas come back too.
import fs, { type FileHandle } from 'node:fs/promises';
import { FormatError } from '../../src/core/errors.js';
import { chunkSizeFor } from '../../src/format/chunk.js';
import type { Partition, PartitionTable } from '../../src/format/manifest.js';
import { DeviceBlockReader } from '../block-reader.js';
import { dataRanges, type DeviceInfo } from '../device.js';
import type { CaptureMap, FilesystemModule, OpenFilesystem } from '../fs/filesystem.js';
import { filesystemModules } from '../fs/registry.js';
import { detectForeignVolume } from '../fs/signatures.js';
import { diskLayout } from '../partition/layout.js';
import { readPartitionTable } from '../partition/table.js';
import { RangeList } from '../ranges.js';
import { type DiskPlan, diskPlanOf, type VolumePlan } from './plan.js';

export interface PlanOptions {
  /** Fixed chunk size, or 'auto' to pick one per volume (chunkSizeFor). */
  chunkSize: number | 'auto';
  modules?: FilesystemModule[];
}

function describePartition(partition: Partition | null, device: DeviceInfo): string {
  return partition ? `partition ${partition.number} of ${device.path}` : device.path;
}

/** Open the filesystem in a volume, or say why it is captured raw. */
async function probeVolume(
  reader: DeviceBlockReader,
  partition: Partition | null,
  device: DeviceInfo,
  modules: FilesystemModule[],
): Promise<{ filesystem: OpenFilesystem | null; warnings: string[] }> {
  const where = describePartition(partition, device);
  const foreign = await detectForeignVolume(reader);
  if (foreign) {
    const why =
      foreign.kind === 'lvm2'
        ? 'its LVM logical volumes are imaged raw, inside the physical volume, for now'
        : 'its contents cannot be read, so it is imaged raw';
    return { filesystem: null, warnings: [`${where} holds a ${foreign.description}: ${why}`] };
  }
  for (const module of modules) {
    if (!(await module.detect(reader))) continue;
    try {
      return { filesystem: await module.open(reader), warnings: [] };
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      return {
        filesystem: null,
        warnings: [
          `${where} looks like ${module.name} but cannot be read (${error.message}): imaged raw, all-zero chunks as holes`,
        ],
      };
    }
  }
  const type = partition ? ` (partition type ${partition.type})` : '';
  return {
    filesystem: null,
    warnings: partition
      ? [`${where}${type} holds no filesystem Backup365 reads: imaged raw, all-zero chunks as holes`]
      : [],
  };
}

/** The module's cross-checked map; one the module cannot even check is not trusted. */
async function checkedCaptureMap(filesystem: OpenFilesystem, where: string, size: number): Promise<CaptureMap> {
  try {
    return await filesystem.captureMap();
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    return {
      method: 'raw',
      ranges: RangeList.full(size),
      warnings: [
        `${where}: its used-block map cannot be checked (${error.message}): imaged raw, all-zero chunks as holes`,
      ],
    };
  }
}

async function volumeFor(
  handle: FileHandle,
  device: DeviceInfo,
  options: PlanOptions,
  spec: { id: string; kind: VolumePlan['kind']; partition: Partition | null; offset: number; size: number },
): Promise<VolumePlan> {
  const modules = options.modules ?? filesystemModules;
  const reader = new DeviceBlockReader(handle, spec.offset, spec.size, `${device.path} ${spec.id}`);
  const data = (): RangeList =>
    dataRanges(handle.fd, device.kind, spec.offset, spec.offset + spec.size).shift(-spec.offset);
  const plan: VolumePlan = {
    id: spec.id,
    kind: spec.kind,
    partitionNumber: spec.partition?.number ?? null,
    offset: spec.offset,
    size: spec.size,
    filesystem: null,
    method: 'raw',
    chunkSize: options.chunkSize === 'auto' ? chunkSizeFor(spec.size) : options.chunkSize,
    readable: data(),
    warnings: [],
  };
  if (spec.kind === 'gap') return plan;
  const { filesystem, warnings } = await probeVolume(reader, spec.partition, device, modules);
  plan.warnings.push(...warnings);
  if (!filesystem) return plan;
  const map = await checkedCaptureMap(filesystem, describePartition(spec.partition, device), spec.size);
  plan.filesystem = filesystem.info;
  plan.method = map.method;
  plan.warnings.push(...filesystem.warnings, ...map.warnings);
  plan.readable = map.ranges.intersect(data());
  // A frozen filesystem has just written its bitmaps: read them again then (the
  // planning handle is closed by now).
  plan.refresh = async () => {
    const again = await fs.open(device.path, 'r');
    try {
      const freshReader = new DeviceBlockReader(again, spec.offset, spec.size, reader.description);
      const reopened = await probeVolume(freshReader, spec.partition, device, modules);
      if (!reopened.filesystem) return;
      const fresh = await checkedCaptureMap(reopened.filesystem, describePartition(spec.partition, device), spec.size);
      plan.method = fresh.method;
      plan.warnings.push(...fresh.warnings.filter((warning) => !plan.warnings.includes(warning)));
      plan.readable = fresh.ranges.intersect(
        dataRanges(again.fd, device.kind, spec.offset, spec.offset + spec.size).shift(-spec.offset),
      );
    } finally {
      await again.close();
    }
  };
  return plan;
}

export interface PlannedDisk {
  plan: DiskPlan;
  warnings: string[];
}

export async function planDisk(
  device: DeviceInfo,
  handle: FileHandle,
  options: PlanOptions,
  id = 'disk0',
): Promise<PlannedDisk> {
  const warnings: string[] = [];
  const whole = new DeviceBlockReader(handle, 0, device.size, device.path);
  let table: PartitionTable = { type: 'none', partitions: [] };
  try {
    const read = await readPartitionTable(whole, device.logicalSectorSize);
    table = read.table;
    warnings.push(...read.warnings.map((warning) => `${device.path}: ${warning}`));
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    warnings.push(
      `${device.path}: the partition table cannot be read (${error.message}): the whole disk is imaged raw`,
    );
  }
  const volumes: VolumePlan[] = [];
  if (table.type === 'none') {
    volumes.push(
      await volumeFor(handle, device, options, {
        id: 'disk',
        kind: 'disk',
        partition: null,
        offset: 0,
        size: device.size,
      }),
    );
  } else {
    const layout = diskLayout(table, device.size);
    const pieces = [
      ...layout.partitions.map((partition) => ({
        id: `p${partition.number}`,
        kind: 'partition' as const,
        partition,
        offset: partition.start,
        size: partition.size,
      })),
      ...layout.gaps.map((gap) => ({
        id: '',
        kind: 'gap' as const,
        partition: null,
        offset: gap.offset,
        size: gap.size,
      })),
    ].sort((a, b) => a.offset - b.offset);
    let gapNumber = 0;
    for (const piece of pieces) {
      if (piece.kind === 'gap') piece.id = `gap${gapNumber++}`;
      volumes.push(await volumeFor(handle, device, options, piece));
    }
  }
  return { warnings, plan: diskPlanOf(device, id, table, volumes, warnings) };
}
