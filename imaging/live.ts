// Live safety: which volumes of a disk are mounted, and freezing them while they are
// read. A filesystem mounted read-write changes under the reader, so it is imaged only
// when the user chose to freeze it (fsfreeze) or to accept a crash-consistent image.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { UnsafeTargetError, UserError } from '../src/core/errors.js';
import type { Partition } from '../src/format/manifest.js';
import type { DeviceInfo } from './device.js';

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
  devno: string;
  readOnly: boolean;
}

/** A volume of a disk as the kernel sees it: its node, device number and mounts. */
export interface VolumeMounts {
  /** Partition number, or null for the whole disk. */
  partition: number | null;
  node: string;
  mounts: MountInfo[];
}

function unescapeMountField(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export async function readMounts(): Promise<MountInfo[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [left, right] = line.split(' - ');
      const fields = left!.split(' ');
      const [fsType, source, superOptions] = right!.split(' ');
      return {
        mountPoint: unescapeMountField(fields[4]!),
        fsType: fsType!,
        source: unescapeMountField(source!),
        devno: fields[2]!,
        // The filesystem's own flag, not this mount's: a read-only view of it (a bind
        // mount, or a service's ProtectSystem=) does not stop others writing through
        // theirs, and a freeze through any of its mounts holds them all.
        readOnly: (superOptions ?? '').split(',').includes('ro'),
      };
    });
}

async function readText(file: string): Promise<string | null> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Block devices that present `device`: itself, or the loop devices backed by an image file. */
async function presentingDevices(device: DeviceInfo): Promise<{ node: string; devno: string; offset: number }[]> {
  if (device.kind === 'block-device') return [{ node: device.path, devno: device.devno!, offset: 0 }];
  const result = await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE,OFFSET,MAJ:MIN'], {
    reject: false,
  });
  if (result.exitCode !== 0 || !String(result.stdout).trim()) return [];
  const real = await fs.realpath(device.path);
  const loops = (
    JSON.parse(String(result.stdout)) as {
      loopdevices: { name: string; 'back-file': string | null; offset: number | string; 'maj:min': string }[];
    }
  ).loopdevices;
  return loops
    .filter((loop) => loop['back-file'] && path.resolve(loop['back-file'].replace(/ \(deleted\)$/, '')) === real)
    .map((loop) => ({ node: loop.name, devno: loop['maj:min'].trim(), offset: Number(loop.offset) }));
}

/**
 * For each volume of the disk that is mounted somewhere: where, and how. Partitions are
 * matched by their place on the disk, so loop devices over an image file count too.
 */
export async function diskMounts(device: DeviceInfo, partitions: Partition[]): Promise<VolumeMounts[]> {
  const mounts = await readMounts();
  const found: VolumeMounts[] = [];
  for (const presenting of await presentingDevices(device)) {
    const sysfs = `/sys/dev/block/${presenting.devno}`;
    const mountsOf = async (node: string, devno: string) => {
      const real = await fs.realpath(node).catch(() => node);
      return mounts.filter((mount) => mount.devno === devno || mount.source === node || mount.source === real);
    };
    const whole = await mountsOf(presenting.node, presenting.devno);
    if (whole.length) found.push({ partition: null, node: presenting.node, mounts: whole });
    let children: string[] = [];
    try {
      children = await fs.readdir(path.join(sysfs));
    } catch {
      children = [];
    }
    for (const child of children) {
      const start = await readText(path.join(sysfs, child, 'start'));
      const devno = await readText(path.join(sysfs, child, 'dev'));
      if (start === null || devno === null) continue;
      const startByte = presenting.offset + Number(start) * 512;
      const partition = partitions.find((candidate) => candidate.start === startByte);
      const node = `/dev/${child}`;
      const partMounts = await mountsOf(node, devno);
      if (partMounts.length) found.push({ partition: partition?.number ?? null, node, mounts: partMounts });
    }
  }
  return found;
}

export class LiveFilesystemError extends UnsafeTargetError {
  override readonly code = 'mounted_read_write';
}

export type LiveMode = 'refuse' | 'freeze' | 'crash-consistent';

/** Refuse, unless told how, to image volumes that are mounted read-write. */
export function checkLiveVolumes(volumes: VolumeMounts[], mode: LiveMode, source: string): VolumeMounts[] {
  const live = volumes.filter((volume) => volume.mounts.some((mount) => !mount.readOnly));
  if (live.length === 0 || mode !== 'refuse') return live;
  const list = live
    .map(
      (volume) =>
        `${volume.node} (${volume.mounts[0]!.fsType}) mounted read-write at ${volume.mounts
          .filter((mount) => !mount.readOnly)
          .map((mount) => mount.mountPoint)
          .join(', ')}`,
    )
    .join('; ');
  throw new LiveFilesystemError(
    `${source}: ${list}. Imaging a filesystem while it changes can capture it torn. Use --freeze to freeze it while it is read (fsfreeze), --crash-consistent to accept an image like a power cut would leave, or unmount it.`,
  );
}

const frozen = new Set<string>();
let exitHookInstalled = false;

function thawAllNow(): void {
  for (const mountPoint of frozen) {
    try {
      execFileSync('fsfreeze', ['--unfreeze', mountPoint], { stdio: 'ignore' });
    } catch {
      // Already thawed.
    }
  }
  frozen.clear();
}

/**
 * Freeze a mounted filesystem; the returned function thaws it. If the process exits
 * by any route the event loop sees (error, Ctrl-C, SIGTERM), it is thawed on the way out.
 */
export async function freeze(mountPoint: string, node: string): Promise<() => Promise<void>> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', thawAllNow);
  }
  const result = await execa('fsfreeze', ['--freeze', mountPoint], { reject: false });
  if (result.exitCode !== 0) {
    throw new UserError(
      `cannot freeze ${node} at ${mountPoint}: ${String(result.stderr).trim() || `fsfreeze exited ${result.exitCode}`}; use --crash-consistent or unmount it`,
    );
  }
  frozen.add(mountPoint);
  return async () => {
    if (!frozen.has(mountPoint)) return;
    frozen.delete(mountPoint);
    await execa('fsfreeze', ['--unfreeze', mountPoint], { reject: false });
  };
}
