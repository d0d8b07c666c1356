// Refusing to write the wrong disk: a target too small, one with mounted partitions or
// active swap, the disk the running system lives on; and, unless --yes, a prompt that
// shows what will be erased and wants the device name typed back.
import fs from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline/promises';
import { UnsafeTargetError } from '../../src/errors.js';
import type { Disk } from '../../src/format/manifest.js';
import { DeviceBlockReader } from '../block-reader.js';
import type { DeviceInfo } from '../device.js';
import { diskMounts, readMounts } from '../live.js';
import { readPartitionTable } from '../partition/table.js';

export function formatSize(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export function describeTarget(device: DeviceInfo): string {
  return [device.path, device.model, device.serial ? `serial ${device.serial}` : null, formatSize(device.size)].filter(Boolean).join(', ');
}

async function readText(file: string): Promise<string | null> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** The whole-disk device number of a block device number (itself if it is a disk). */
async function diskOf(devno: string): Promise<string> {
  const sysfs = `/sys/dev/block/${devno}`;
  if ((await readText(path.join(sysfs, 'partition'))) === null) return devno;
  const parent = await readText(path.join(sysfs, '..', 'dev'));
  return parent ?? devno;
}

/** Disks that hold the running system: its root and boot filesystems and active swap. */
async function systemDisks(): Promise<Set<string>> {
  const disks = new Set<string>();
  for (const mount of await readMounts()) {
    if (!['/', '/boot', '/boot/efi', '/usr', '/var'].includes(mount.mountPoint)) continue;
    if (mount.devno.startsWith('0:')) continue;
    disks.add(await diskOf(mount.devno));
  }
  return disks;
}

async function activeSwaps(): Promise<string[]> {
  const text = (await readText('/proc/swaps')) ?? '';
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.split(/\s+/)[0]!)
    .filter(Boolean);
}

/** Everything that makes writing `target` unsafe, as one refusal naming the disk. */
export async function checkTarget(target: DeviceInfo, disk: Disk): Promise<void> {
  const name = describeTarget(target);
  if (target.size < disk.size) {
    throw new UnsafeTargetError(`refusing to restore onto ${name}: it is ${formatSize(disk.size - target.size)} (${disk.size - target.size} bytes) smaller than the ${formatSize(disk.size)} source disk; nothing was written`);
  }
  if (target.logicalSectorSize !== disk.logicalSectorSize && disk.partitionTable.type !== 'none') {
    // The table writer re-expresses offsets in the target's sectors; partitions must land on them.
    const misaligned = disk.partitionTable.partitions.find((partition) => partition.start % target.logicalSectorSize !== 0 || partition.size % target.logicalSectorSize !== 0);
    if (misaligned) throw new UnsafeTargetError(`refusing to restore onto ${name}: partition ${misaligned.number} does not fit its ${target.logicalSectorSize}-byte sectors`);
  }
  if (target.kind !== 'block-device') return;
  const mounted = await diskMounts(target, []);
  if (mounted.length) {
    const list = mounted.flatMap((volume) => volume.mounts.map((mount) => `${volume.node} at ${mount.mountPoint}`)).join(', ');
    throw new UnsafeTargetError(`refusing to restore onto ${name}: it has mounted filesystems (${list}); unmount them first; nothing was written`);
  }
  if ((await systemDisks()).has(await diskOf(target.devno!))) {
    throw new UnsafeTargetError(`refusing to restore onto ${name}: the running system lives on it; boot the rescue medium to restore this disk; nothing was written`);
  }
  const swaps = await activeSwaps();
  for (const swap of swaps) {
    const real = await fs.realpath(swap).catch(() => swap);
    const stats = await fs.stat(real).catch(() => null);
    if (stats?.isBlockDevice()) {
      const devno = `${Math.floor(stats.rdev / 256) & 0xfff}:${(stats.rdev & 0xff) | ((stats.rdev >> 12) & 0xfff00)}`;
      if ((await diskOf(devno)) === target.devno) throw new UnsafeTargetError(`refusing to restore onto ${name}: ${swap} on it is in use as swap (swapoff first); nothing was written`);
    }
  }
}

/** What a target holds now, for the confirmation prompt. */
export async function describeContents(target: DeviceInfo): Promise<string[]> {
  const handle = await fs.open(target.path, 'r');
  try {
    const { table } = await readPartitionTable(new DeviceBlockReader(handle, 0, target.size, target.path), target.logicalSectorSize);
    if (table.type === 'none') return ['no partition table'];
    return [`${table.type.toUpperCase()} partition table`, ...table.partitions.map((partition) => `  partition ${partition.number}: ${formatSize(partition.size)}${partition.name ? ` "${partition.name}"` : ''} type ${partition.type}`)];
  } catch {
    return ['unreadable partition table'];
  } finally {
    await handle.close();
  }
}

/**
 * Without --yes, show what will be erased and ask for the device name to be typed back.
 * In a script (no terminal) there is nobody to ask: refuse instead.
 */
export async function confirmErase(target: DeviceInfo, image: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new UnsafeTargetError(`restoring ${image} erases ${describeTarget(target)}: confirm with --yes when running without a terminal; nothing was written`);
  }
  const lines = [`Restoring ${image} will ERASE everything on ${describeTarget(target)}:`, ...(await describeContents(target)).map((line) => `  ${line}`), `Type the device name (${path.basename(target.path)}) to continue, anything else to stop:`];
  const prompt = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await prompt.question(`${lines.join('\n')}\n> `)).trim();
    if (answer !== path.basename(target.path) && answer !== target.path) throw new UnsafeTargetError(`confirmation did not match ${path.basename(target.path)}; nothing was written`);
  } finally {
    prompt.close();
  }
}
