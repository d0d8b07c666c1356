// Disk discovery for `b365 disks`: block devices from lsblk (model, serial, sizes,
// partitions, filesystems, mount points), usage of mounted filesystems from
// node-disk-info (df), and disk image files read with our own table and fs readers.
import fs from 'node:fs/promises';
import { execa } from 'execa';
import nodeDiskInfo from 'node-disk-info';
import { UserError } from '../src/core/errors.js';
import { DeviceBlockReader } from './block-reader.js';
import { describeDevice } from './device.js';
import { filesystemModules } from './fs/registry.js';
import { diskMounts } from './live.js';
import { readPartitionTable } from './partition/table.js';

export interface DiscoveredPartition {
  number: number;
  path: string | null;
  start: number;
  size: number;
  type: string | null;
  label: string | null;
  filesystem: string | null;
  fsLabel: string | null;
  uuid: string | null;
  mountPoints: string[];
  usedBytes: number | null;
  fsSizeBytes: number | null;
}

export interface DiscoveredDisk {
  path: string;
  kind: 'block-device' | 'file';
  model: string | null;
  serial: string | null;
  size: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  partitionTable: string | null;
  readOnly: boolean;
  partitions: DiscoveredPartition[];
}

interface LsblkDevice {
  path: string;
  type: string;
  model: string | null;
  serial: string | null;
  size: number;
  'log-sec': number;
  'phy-sec': number;
  pttype: string | null;
  ro: boolean;
  partn?: number | null;
  start: number | null;
  parttype: string | null;
  partlabel: string | null;
  fstype: string | null;
  label: string | null;
  uuid: string | null;
  mountpoints: (string | null)[];
  fsused: number | null;
  fssize: number | null;
  children?: LsblkDevice[];
}

/** Usage of mounted filesystems by mount point, from df (node-disk-info). */
function mountedUsage(): Map<string, { used: number; size: number }> {
  const usage = new Map<string, { used: number; size: number }>();
  try {
    for (const drive of nodeDiskInfo.getDiskInfoSync())
      usage.set(drive.mounted, { used: drive.used * 1024, size: drive.blocks * 1024 });
  } catch {
    // df is missing or failed: lsblk's own figures are used.
  }
  return usage;
}

function partitionNumberOf(device: LsblkDevice, parent: LsblkDevice): number {
  if (device.partn) return device.partn;
  const match = /(\d+)$/.exec(device.path.slice(parent.path.length));
  return match ? Number(match[1]) : 0;
}

/** Our own probe of one partition, for what lsblk leaves empty (no udev to ask). */
async function probe(node: string): Promise<{ type: string; uuid: string | null; label: string | null } | null> {
  let opened: Awaited<ReturnType<typeof DeviceBlockReader.open>>;
  try {
    opened = await DeviceBlockReader.open(node);
  } catch {
    return null;
  }
  try {
    for (const module of filesystemModules) {
      if (!(await module.detect(opened.reader).catch(() => false))) continue;
      const info = await module.open(opened.reader).then(
        (filesystem) => filesystem.info,
        () => null,
      );
      return info ? { type: info.type, uuid: info.uuid, label: info.label } : null;
    }
    return null;
  } finally {
    await opened.close();
  }
}

export async function discoverBlockDevices(paths: string[] = []): Promise<DiscoveredDisk[]> {
  const result = await execa('lsblk', ['--json', '--bytes', '-O', ...paths], { reject: false });
  if (result.exitCode !== 0) throw new UserError(`lsblk failed: ${String(result.stderr).trim()}`);
  const usage = mountedUsage();
  const devices = (JSON.parse(String(result.stdout)) as { blockdevices: LsblkDevice[] }).blockdevices;
  const usageOf = (device: LsblkDevice) => {
    const mount = device.mountpoints.find((point): point is string => Boolean(point));
    const df = mount ? usage.get(mount) : undefined;
    return { usedBytes: df?.used ?? device.fsused ?? null, fsSizeBytes: df?.size ?? device.fssize ?? null };
  };
  const disks = devices
    .filter((device) => ['disk', 'loop'].includes(device.type) && (paths.length > 0 || device.size > 0))
    .map((device) => ({
      path: device.path,
      kind: 'block-device' as const,
      model: device.model?.trim() || null,
      serial: device.serial?.trim() || null,
      size: device.size,
      logicalSectorSize: device['log-sec'],
      physicalSectorSize: device['phy-sec'],
      partitionTable: device.pttype,
      readOnly: device.ro,
      partitions: (device.children ?? [])
        .filter((child) => child.type === 'part')
        .map((child) => ({
          number: partitionNumberOf(child, device),
          path: child.path,
          start: (child.start ?? 0) * device['log-sec'],
          size: child.size,
          type: child.parttype,
          label: child.partlabel,
          filesystem: child.fstype,
          fsLabel: child.label,
          uuid: child.uuid,
          mountPoints: child.mountpoints.filter((point): point is string => Boolean(point)),
          ...usageOf(child),
        })),
    }));
  for (const disk of disks) {
    for (const partition of disk.partitions) {
      if (partition.filesystem && partition.uuid) continue;
      const found = partition.path ? await probe(partition.path) : null;
      if (!found) continue;
      partition.filesystem ??= found.type;
      partition.uuid ??= found.uuid;
      partition.fsLabel ??= found.label;
    }
  }
  return disks;
}

/** A disk image file: read with Backup365's own partition and filesystem readers. */
export async function discoverImageFile(file: string): Promise<DiscoveredDisk> {
  const device = await describeDevice(file);
  const handle = await fs.open(file, 'r');
  try {
    const whole = new DeviceBlockReader(handle, 0, device.size, file);
    const { table } = await readPartitionTable(whole, device.logicalSectorSize);
    const mounts = await diskMounts(device, table.partitions);
    const partitions: DiscoveredPartition[] = [];
    for (const partition of table.partitions.filter((entry) => entry.kind !== 'extended')) {
      const reader = new DeviceBlockReader(
        handle,
        partition.start,
        partition.size,
        `${file} partition ${partition.number}`,
      );
      let info = null;
      for (const module of filesystemModules) {
        if (!(await module.detect(reader).catch(() => false))) continue;
        info = await module.open(reader).then(
          (opened) => opened.info,
          () => null,
        );
        break;
      }
      partitions.push({
        number: partition.number,
        path: null,
        start: partition.start,
        size: partition.size,
        type: partition.type,
        label: partition.name ?? null,
        filesystem: info?.type ?? null,
        fsLabel: info?.label ?? null,
        uuid: info?.uuid ?? null,
        mountPoints: mounts
          .filter((entry) => entry.partition === partition.number)
          .flatMap((entry) => entry.mounts.map((mount) => mount.mountPoint)),
        usedBytes: info?.usedBytes ?? null,
        fsSizeBytes: info?.totalBytes ?? null,
      });
    }
    return {
      path: file,
      kind: 'file',
      model: null,
      serial: null,
      size: device.size,
      logicalSectorSize: device.logicalSectorSize,
      physicalSectorSize: device.physicalSectorSize,
      partitionTable: table.type === 'none' ? null : table.type,
      readOnly: false,
      partitions,
    };
  } finally {
    await handle.close();
  }
}

export async function discoverDisks(paths: string[]): Promise<DiscoveredDisk[]> {
  if (paths.length === 0) return discoverBlockDevices();
  const disks: DiscoveredDisk[] = [];
  for (const path of paths) {
    const device = await describeDevice(path);
    disks.push(...(device.kind === 'file' ? [await discoverImageFile(path)] : await discoverBlockDevices([path])));
  }
  return disks;
}
