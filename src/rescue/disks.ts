// The disks a technician may restore onto or capture from, as lsblk reports them, and
// the refusals that keep the wrong disk from being written: the rescue medium itself,
// read-only disks, disks with a mounted partition or anything stacked on them.
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { liveSystemView, stackedUses } from '../../imaging/restore/safety.js';
import { BlockStack } from '../../imaging/stack.js';
import { formatBytes } from '../core/units.js';
import { FormatError, NotFoundError, UnsafeTargetError } from '../core/errors.js';

export interface DiskCandidate {
  /** Kernel name, e.g. vda or nvme0n1: what the technician types to confirm. */
  name: string;
  path: string;
  size: number;
  model: string | null;
  serial: string | null;
  transport: string | null;
  removable: boolean;
  readOnly: boolean;
  /** The live medium this system runs from. */
  rescueMedium: boolean;
  /** Mount points of the disk or its partitions. */
  mounted: string[];
  /** Devices stacked on it that are in use, as chains (`/dev/sdb → dm-0 (vg0-root) mounted at /`). */
  stacked: string[];
}

interface LsblkDevice {
  name?: unknown;
  path?: unknown;
  type?: unknown;
  size?: unknown;
  model?: unknown;
  serial?: unknown;
  tran?: unknown;
  rm?: unknown;
  ro?: unknown;
  mountpoints?: unknown;
  children?: LsblkDevice[];
}

const text = (value: unknown): string | null =>
  typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
const flag = (value: unknown): boolean => value === true || value === 1 || value === '1';

function mountsOf(device: LsblkDevice): string[] {
  const own = Array.isArray(device.mountpoints)
    ? device.mountpoints.filter((point): point is string => typeof point === 'string' && point !== '')
    : [];
  return [...own, ...(device.children ?? []).flatMap(mountsOf)];
}

/** Parse `lsblk --json --bytes -o NAME,PATH,TYPE,SIZE,MODEL,SERIAL,TRAN,RM,RO,MOUNTPOINTS`. */
export function parseLsblk(json: string, rescueMediumName: string | null): DiskCandidate[] {
  let parsed: { blockdevices?: LsblkDevice[] };
  try {
    parsed = JSON.parse(json) as { blockdevices?: LsblkDevice[] };
  } catch (error) {
    throw new FormatError(`lsblk printed something that is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed.blockdevices)) throw new FormatError('lsblk output has no blockdevices list');
  return (
    parsed.blockdevices
      // Loop devices are listed so that an image file attached with losetup can be a target.
      .filter((device) => (device.type === 'disk' || device.type === 'loop') && Number(device.size) > 0)
      .map((device) => {
        const name = text(device.name) ?? '';
        return {
          name,
          path: text(device.path) ?? `/dev/${name}`,
          size: Number(device.size),
          model: text(device.model),
          serial: text(device.serial),
          transport: text(device.tran),
          removable: flag(device.rm),
          readOnly: flag(device.ro),
          rescueMedium: name === rescueMediumName,
          mounted: mountsOf(device),
          stacked: [],
        };
      })
  );
}

/** The whole disk that holds the live medium (live-boot mounts it at /run/live/medium). */
export async function rescueMediumDisk(): Promise<string | null> {
  const source = await execa('findmnt', ['--noheadings', '--output', 'SOURCE', '/run/live/medium'], { reject: false });
  const device = String(source.stdout).trim();
  if (source.exitCode !== 0 || !device.startsWith('/dev/')) return null;
  const parent = await execa('lsblk', ['--noheadings', '--nodeps', '--output', 'PKNAME', device], { reject: false });
  return String(parent.stdout).trim() || device.replace(/^\/dev\//, '');
}

export async function listDisks(): Promise<DiskCandidate[]> {
  const result = await execa('lsblk', [
    '--json',
    '--bytes',
    '--output',
    'NAME,PATH,TYPE,SIZE,MODEL,SERIAL,TRAN,RM,RO,MOUNTPOINTS',
  ]);
  const disks = parseLsblk(String(result.stdout), await rescueMediumDisk());
  // The same stack walk the restore refuses by: lsblk does not show a loop over a loop.
  const stack = new BlockStack(await liveSystemView());
  for (const disk of disks) disk.stacked = await stackedUses(stack, disk.path, disk.name);
  return disks;
}

/** Disks worth offering: not the rescue medium, not read-only, no loop device unless asked. */
export function offeredDisks(disks: DiskCandidate[], options: { includeLoop?: boolean } = {}): DiskCandidate[] {
  return disks.filter(
    (disk) =>
      !disk.rescueMedium &&
      !disk.readOnly &&
      (options.includeLoop || !disk.path.startsWith('/dev/loop')) &&
      !disk.path.startsWith('/dev/zram'),
  );
}

/** The disk the image was taken from, recognised by its serial number. */
export function diskWithSerial(disks: DiskCandidate[], serial: string | null): DiskCandidate | null {
  if (!serial) return null;
  return disks.find((disk) => disk.serial !== null && disk.serial === serial) ?? null;
}

export function describeDisk(disk: DiskCandidate): string {
  const size = formatBytes(disk.size);
  const details = [
    disk.model,
    disk.serial ? `serial ${disk.serial}` : 'no serial',
    disk.transport,
    disk.removable ? 'removable' : null,
  ].filter(Boolean);
  return `${disk.name.padEnd(8)} ${size.padStart(9)}  ${details.join(', ')}`;
}

/** Does what a person typed name this disk? `vda` and `/dev/vda` both do. */
export function confirmsDisk(typed: string, disk: DiskCandidate): boolean {
  const answer = typed.trim();
  return answer === disk.name || answer === disk.path;
}

/** Refuse to write a disk that is the rescue medium, read-only, has a mounted partition or anything stacked on it in use. */
export function assertWritable(disk: DiskCandidate): void {
  if (disk.rescueMedium)
    throw new UnsafeTargetError(`${disk.path} holds the rescue system itself; choose another disk`);
  if (disk.readOnly) throw new UnsafeTargetError(`${disk.path} is read-only`);
  if (disk.mounted.length)
    throw new UnsafeTargetError(
      `${disk.path} has mounted filesystems (${disk.mounted.join(', ')}); unmount them first`,
    );
  if (disk.stacked.length) throw new UnsafeTargetError(`${disk.path} is in use: ${disk.stacked.join('; ')}`);
}

/** Drivers load a moment after boot: wait until the disk is there. */
export async function waitForDisk(path: string, timeoutMs: number): Promise<DiskCandidate> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exists = await fs.stat(path).then(
      (stats) => stats.isBlockDevice(),
      () => false,
    );
    if (exists) {
      const disks = await listDisks();
      const real = await fs.realpath(path);
      const disk = disks.find((candidate) => candidate.path === path || candidate.path === real);
      if (disk) return disk;
      throw new UnsafeTargetError(
        `${path} is not a whole disk (lsblk lists ${disks.map((candidate) => candidate.path).join(', ') || 'none'})`,
      );
    }
    if (Date.now() >= deadline)
      throw new NotFoundError(`disk ${path} did not appear within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(500);
  }
}
