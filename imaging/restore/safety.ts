// Refusing to write the wrong disk: a target too small, one with mounted partitions or
// active swap, one with anything stacked on it (dm, md, LVM, LUKS, loop, bcache, zram),
// the disk the running system lives on (through whatever it is stacked on); and, unless
// --yes, a prompt that shows what will be erased and wants the device name typed back.
import { constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline/promises';
import { InterruptedError, UnsafeTargetError } from '../../src/core/errors.js';
import { formatBytes } from '../../src/core/units.js';
import type { Disk } from '../../src/format/manifest.js';
import { DeviceBlockReader } from '../block-reader.js';
import type { DeviceInfo } from '../device.js';
import { diskMounts, readMounts } from '../live.js';
import { readPartitionTable } from '../partition/table.js';
import { BlockStack, describeChain, devnoOf, readText, type SystemView } from '../stack.js';

export function describeTarget(device: DeviceInfo): string {
  return [device.path, device.model, device.serial ? `serial ${device.serial}` : null, formatBytes(device.size)]
    .filter(Boolean)
    .join(', ');
}

/** The whole-disk device number of a block device number (itself if it is a disk). */
async function diskOf(devno: string): Promise<string> {
  const sysfs = `/sys/dev/block/${devno}`;
  if ((await readText(path.join(sysfs, 'partition'))) === null) return devno;
  const parent = await readText(path.join(sysfs, '..', 'dev'));
  return parent ?? devno;
}

async function activeSwaps(): Promise<string[]> {
  const text = (await readText('/proc/swaps')) ?? '';
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.split(/\s+/)[0]!)
    .filter(Boolean);
}

/** This system as the checks see it: sysfs, its mounts and its active swap. */
export async function liveSystemView(): Promise<SystemView> {
  return { sysfs: '/sys', mounts: await readMounts(), swaps: await activeSwaps() };
}

const SYSTEM_MOUNT_POINTS = ['/', '/boot', '/boot/efi', '/usr', '/var'];

/**
 * Does the running system live on the device `name`: is it, or its disk, beneath the
 * root, /boot, /boot/efi, /usr or /var filesystem, through any stack (a root on LVM
 * on LUKS on sdb2 lives on sdb)?
 */
export async function holdsRunningSystem(
  stack: BlockStack,
  name: string,
  mounts: SystemView['mounts'],
): Promise<boolean> {
  const system = new Set<string>();
  for (const mount of mounts) {
    if (!SYSTEM_MOUNT_POINTS.includes(mount.mountPoint) || mount.devno.startsWith('0:')) continue;
    const device = await stack.nameOf(mount.devno);
    if (device) for (const below of await stack.everythingBelow(device)) system.add(below);
  }
  return system.has(name) || system.has(await stack.diskOf(name));
}

/** Each chain of devices stacked on `name` that is in use, in words; empty when none is. */
export async function stackedUses(stack: BlockStack, targetPath: string, name: string): Promise<string[]> {
  return (await stack.busyChains(name)).map((chain) => describeChain(targetPath, chain));
}

/** Everything that makes writing `target` unsafe, as one refusal naming the disk. */
export async function checkTarget(target: DeviceInfo, disk: Disk): Promise<void> {
  checkTargetFits(target, disk);
  await checkTargetFree(target);
}

/** A target too small for the disk, or whose sectors its partitions do not fall on, is refused. */
export function checkTargetFits(target: DeviceInfo, disk: Disk): void {
  const name = describeTarget(target);
  if (target.size < disk.size) {
    throw new UnsafeTargetError(
      `refusing to restore onto ${name}: it is ${formatBytes(disk.size - target.size)} (${disk.size - target.size} bytes) smaller than the ${formatBytes(disk.size)} source disk; nothing was written`,
    );
  }
  if (target.logicalSectorSize !== disk.logicalSectorSize && disk.partitionTable.type !== 'none') {
    // The table writer re-expresses offsets in the target's sectors; partitions must land on them.
    const misaligned = disk.partitionTable.partitions.find(
      (partition) =>
        partition.start % target.logicalSectorSize !== 0 || partition.size % target.logicalSectorSize !== 0,
    );
    if (misaligned)
      throw new UnsafeTargetError(
        `refusing to restore onto ${name}: partition ${misaligned.number} does not fit its ${target.logicalSectorSize}-byte sectors`,
      );
  }
}

/** A block device that is read-only, mounted, the running system's, stacked on or swapped to is refused. */
export async function checkTargetFree(target: DeviceInfo): Promise<void> {
  if (target.kind !== 'block-device') return;
  const name = describeTarget(target);
  if ((await readText(`/sys/dev/block/${target.devno}/ro`)) === '1') {
    throw new UnsafeTargetError(
      `cannot restore onto ${name}: the kernel holds it read-only (write-protected, or attached read-only); nothing was written`,
    );
  }
  const mounted = await diskMounts(target, []);
  if (mounted.length) {
    const list = mounted
      .flatMap((volume) => volume.mounts.map((mount) => `${volume.node} at ${mount.mountPoint}`))
      .join(', ');
    throw new UnsafeTargetError(
      `refusing to restore onto ${name}: it has mounted filesystems (${list}); unmount them first; nothing was written`,
    );
  }
  const view = await liveSystemView();
  const stack = new BlockStack(view);
  const kernelName = await stack.nameOf(target.devno!);
  if (kernelName && (await holdsRunningSystem(stack, kernelName, view.mounts))) {
    throw new UnsafeTargetError(
      `refusing to restore onto ${name}: the running system lives on it; boot the rescue medium to restore this disk; nothing was written`,
    );
  }
  const uses = kernelName ? await stackedUses(stack, target.path, kernelName) : [];
  if (uses.length) {
    throw new UnsafeTargetError(
      `refusing to restore onto ${name}: ${uses.join('; ')}; stop what uses it first (umount, swapoff, vgchange -an, cryptsetup close, mdadm --stop, losetup -d); nothing was written`,
      { details: { inUse: uses } },
    );
  }
  const swaps = await activeSwaps();
  for (const swap of swaps) {
    const real = await fs.realpath(swap).catch(() => swap);
    const stats = await fs.stat(real).catch(() => null);
    if (stats?.isBlockDevice()) {
      if ((await diskOf(devnoOf(stats.rdev))) === target.devno)
        throw new UnsafeTargetError(
          `refusing to restore onto ${name}: ${swap} on it is in use as swap (swapoff first); nothing was written`,
        );
    }
  }
}

/**
 * Open a target for writing. A block device is opened exclusively (O_EXCL): the kernel
 * refuses that while the device is mounted or held by anything stacked on it, which
 * closes the gap between the checks above and the first write.
 */
export async function openForRestore(target: DeviceInfo): Promise<FileHandle> {
  const exclusive = target.kind === 'block-device' ? fsConstants.O_EXCL : 0;
  try {
    return await fs.open(target.path, fsConstants.O_RDWR | exclusive);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const name = describeTarget(target);
    if (code === 'EBUSY') {
      const stack = new BlockStack(await liveSystemView());
      const kernelName = target.devno ? await stack.nameOf(target.devno) : null;
      const uses = kernelName ? await stackedUses(stack, target.path, kernelName) : [];
      const mounted = (await diskMounts(target, [])).flatMap((volume) =>
        volume.mounts.map((mount) => `${volume.node} mounted at ${mount.mountPoint}`),
      );
      const holders =
        [...mounted, ...uses].join('; ') ||
        'nothing visible holds it: a filesystem on it may still be alive after a lazy unmount (umount -l), or another program has it open exclusively';
      throw new UnsafeTargetError(
        `refusing to restore onto ${name}: the kernel reports it busy (${holders}); nothing was written`,
        { cause: error },
      );
    }
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
      throw new UnsafeTargetError(
        `cannot restore onto ${name}: the kernel refuses to open it for writing (${code}${code === 'EROFS' || code === 'EACCES' ? ': it is read-only' : ''}); nothing was written`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** What a target holds now, for the confirmation prompt. */
export async function describeContents(target: DeviceInfo): Promise<string[]> {
  const handle = await fs.open(target.path, 'r');
  try {
    const { table } = await readPartitionTable(
      new DeviceBlockReader(handle, 0, target.size, target.path),
      target.logicalSectorSize,
    );
    if (table.type === 'none') return ['no partition table'];
    return [
      `${table.type.toUpperCase()} partition table`,
      ...table.partitions.map(
        (partition) =>
          `  partition ${partition.number}: ${formatBytes(partition.size)}${partition.name ? ` "${partition.name}"` : ''} type ${partition.type}`,
      ),
    ];
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
export async function confirmErase(
  target: DeviceInfo,
  image: string,
  yes: boolean,
  signal?: AbortSignal,
): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new UnsafeTargetError(
      `restoring ${image} erases ${describeTarget(target)}: confirm with --yes when running without a terminal; nothing was written`,
    );
  }
  const lines = [
    `Restoring ${image} will ERASE everything on ${describeTarget(target)}:`,
    ...(await describeContents(target)).map((line) => `  ${line}`),
    `Type the device name (${path.basename(target.path)}) to continue, anything else to stop:`,
  ];
  const prompt = readline.createInterface({ input: process.stdin, output: process.stderr });
  // The terminal is in raw mode while asking: Ctrl-C reaches readline, not the process.
  prompt.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  try {
    const answer = (
      await prompt.question(`${lines.join('\n')}\n> `, { signal }).catch((error: unknown) => {
        if (signal?.aborted)
          throw new InterruptedError(`interrupted at the confirmation; nothing was written to ${target.path}`, {
            cause: error,
          });
        throw error;
      })
    ).trim();
    if (answer !== path.basename(target.path) && answer !== target.path)
      throw new UnsafeTargetError(`confirmation did not match ${path.basename(target.path)}; nothing was written`);
  } finally {
    prompt.close();
  }
}
