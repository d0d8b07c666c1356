// The stack of block devices around a disk, as the kernel shows it in sysfs: what is
// stacked on it (partitions, device-mapper, md, bcache, loop and zram devices backed by
// it) and what it is stacked on. A restore refuses a disk anything is stacked on.
//
// Kernel files read, all under the sysfs root (`/sys` unless a test passes its own tree):
//   class/block/NAME            a symlink to the device's directory (partitions sit inside their disk's)
//   class/block/NAME/dev        "major:minor"
//   class/block/NAME/partition  present for a partition
//   class/block/NAME/holders/*  devices stacked on NAME by dm, md, bcache (entries named by kernel name)
//   class/block/NAME/slaves/*   devices NAME is stacked on
//   class/block/NAME/dm/name, dm/uuid          device-mapper name; uuid "LVM-…" (LVM), "CRYPT-…" (dm-crypt, LUKS)
//   class/block/NAME/md/level, md/array_state  an md array
//   class/block/NAME/loop/backing_file         the file or device a loop device reads (loops never appear in holders/)
//   class/block/NAME/backing_dev               the device a zram device writes back to ("none" without)
//   dev/block/MAJOR:MINOR       a symlink to the device's directory (finds the device a file lives on)
import fs from 'node:fs/promises';
import path from 'node:path';

export type LayerKind = 'disk' | 'partition' | 'lvm' | 'crypt' | 'dm' | 'md' | 'loop' | 'bcache' | 'zram';

/** One block device of a stack, with what makes it busy. */
export interface StackLayer {
  /** Kernel name: sdb, sdb2, dm-0, md127, loop1. */
  name: string;
  devno: string | null;
  kind: LayerKind;
  /** A name people know it by: the device-mapper name (vg0-root), an md level, a loop's backing file. */
  label: string | null;
  mountPoints: string[];
  swap: boolean;
}

/** What the checks know of the system besides sysfs: its mounts and active swap. */
export interface SystemView {
  /** The sysfs root, `/sys` by default. */
  sysfs?: string;
  /** Mounts as major:minor and mount point (from /proc/self/mountinfo). */
  mounts: { devno: string; mountPoint: string }[];
  /** Active swap areas as listed in /proc/swaps. */
  swaps: string[];
}

/** A sysfs or procfs attribute, trimmed; null when it does not exist. */
export async function readText(file: string): Promise<string | null> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function listNames(directory: string): Promise<string[]> {
  try {
    return (await fs.readdir(directory)).sort();
  } catch {
    return [];
  }
}

/** major:minor of a device number as stat returns it (Linux's encoding). */
export function devnoOf(rdev: number): string {
  return `${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`;
}

/** Reads one sysfs tree; every answer is about block devices named by their kernel name. */
export class BlockStack {
  readonly sysfs: string;
  private readonly swapNames: Promise<Set<string>>;
  private backedCache: Promise<Map<string, string[]>> | null = null;

  constructor(private readonly view: SystemView) {
    this.sysfs = view.sysfs ?? '/sys';
    this.swapNames = this.resolveSwaps();
  }

  private dir(name: string): string {
    return path.join(this.sysfs, 'class', 'block', name);
  }

  async has(name: string): Promise<boolean> {
    return exists(path.join(this.dir(name), 'dev'));
  }

  /** The kernel name of the device major:minor, or null when sysfs does not know it. */
  async nameOf(devno: string): Promise<string | null> {
    try {
      return path.basename(await fs.realpath(path.join(this.sysfs, 'dev', 'block', devno)));
    } catch {
      return null;
    }
  }

  async isPartition(name: string): Promise<boolean> {
    return exists(path.join(this.dir(name), 'partition'));
  }

  /** The whole disk of a partition (itself for anything else). */
  async diskOf(name: string): Promise<string> {
    if (!(await this.isPartition(name))) return name;
    try {
      return path.basename(path.dirname(await fs.realpath(this.dir(name))));
    } catch {
      return name;
    }
  }

  async partitionsOf(name: string): Promise<string[]> {
    if (await this.isPartition(name)) return [];
    const found: string[] = [];
    for (const entry of await listNames(this.dir(name))) {
      if (await exists(path.join(this.dir(name), entry, 'partition'))) found.push(entry);
    }
    return found;
  }

  async layer(name: string): Promise<StackLayer> {
    const dir = this.dir(name);
    const devno = await readText(path.join(dir, 'dev'));
    const mountPoints = devno
      ? this.view.mounts.filter((mount) => mount.devno === devno).map((mount) => mount.mountPoint)
      : [];
    const swap = (await this.swapNames).has(name);
    const base = { name, devno, mountPoints, swap };
    if (await this.isPartition(name)) return { ...base, kind: 'partition', label: null };
    const dmUuid = await readText(path.join(dir, 'dm', 'uuid'));
    const dmName = await readText(path.join(dir, 'dm', 'name'));
    if (dmUuid !== null || dmName !== null) {
      const kind = dmUuid?.startsWith('LVM-') ? 'lvm' : dmUuid?.startsWith('CRYPT-') ? 'crypt' : 'dm';
      return { ...base, kind, label: dmName };
    }
    if (await exists(path.join(dir, 'md'))) {
      const level = await readText(path.join(dir, 'md', 'level'));
      const state = await readText(path.join(dir, 'md', 'array_state'));
      return { ...base, kind: 'md', label: [level, state].filter(Boolean).join(', ') || null };
    }
    if (/^loop\d+$/.test(name))
      return { ...base, kind: 'loop', label: await readText(path.join(dir, 'loop', 'backing_file')) };
    if (/^bcache\d+$/.test(name)) return { ...base, kind: 'bcache', label: null };
    if (/^zram\d+$/.test(name)) return { ...base, kind: 'zram', label: null };
    return { ...base, kind: 'disk', label: null };
  }

  /**
   * The device a path names or lives on: a device node is that device; a regular file
   * is on the device its filesystem sits on. Null when neither can be found.
   */
  private async deviceBehind(file: string): Promise<{ name: string; through: 'device' | 'file' } | null> {
    const cleaned = file.replace(/ \(deleted\)$/, '');
    const real = await fs.realpath(cleaned).catch(() => cleaned);
    // A node under /dev names a device by its kernel name (this also serves trees without /dev).
    if (real.startsWith('/dev/') && (await this.has(path.basename(real))))
      return { name: path.basename(real), through: 'device' };
    const stats = await fs.stat(real).catch(() => null);
    if (!stats) return null;
    if (stats.isBlockDevice()) {
      const name = await this.nameOf(devnoOf(stats.rdev));
      return name ? { name, through: 'device' } : null;
    }
    const name = await this.nameOf(devnoOf(stats.dev));
    return name ? { name, through: 'file' } : null;
  }

  /** Loop and zram devices by the device under them: they never show in holders/. */
  private backedDevices(): Promise<Map<string, string[]>> {
    this.backedCache ??= (async () => {
      const backed = new Map<string, string[]>();
      for (const name of await listNames(path.join(this.sysfs, 'class', 'block'))) {
        let backing: string | null = null;
        if (/^loop\d+$/.test(name)) backing = await readText(path.join(this.dir(name), 'loop', 'backing_file'));
        else if (/^zram\d+$/.test(name)) backing = await readText(path.join(this.dir(name), 'backing_dev'));
        if (!backing || backing === 'none') continue;
        const lower = await this.deviceBehind(backing);
        if (!lower) continue;
        backed.set(lower.name, [...(backed.get(lower.name) ?? []), name]);
      }
      return backed;
    })();
    return this.backedCache;
  }

  /** Devices stacked directly on `name`: its partitions, its holders, loops and zram over it. */
  async above(name: string): Promise<string[]> {
    const backed = (await this.backedDevices()).get(name) ?? [];
    return [
      ...new Set([
        ...(await this.partitionsOf(name)),
        ...(await listNames(path.join(this.dir(name), 'holders'))),
        ...backed,
      ]),
    ];
  }

  /** Devices `name` is stacked on directly: its disk, its slaves, the device under a loop or zram. */
  async below(name: string): Promise<string[]> {
    const lower: string[] = [];
    if (await this.isPartition(name)) lower.push(await this.diskOf(name));
    lower.push(...(await listNames(path.join(this.dir(name), 'slaves'))));
    const backing = /^loop\d+$/.test(name)
      ? await readText(path.join(this.dir(name), 'loop', 'backing_file'))
      : /^zram\d+$/.test(name)
        ? await readText(path.join(this.dir(name), 'backing_dev'))
        : null;
    if (backing && backing !== 'none') {
      const device = await this.deviceBehind(backing);
      if (device) lower.push(device.name);
    }
    return [...new Set(lower)].filter((entry) => entry !== name);
  }

  /** `name` and everything it is stacked on, down to the disks. */
  async everythingBelow(name: string): Promise<Set<string>> {
    const seen = new Set<string>([name]);
    const queue = [name];
    while (queue.length) {
      for (const lower of await this.below(queue.shift()!)) {
        if (seen.has(lower)) continue;
        seen.add(lower);
        queue.push(lower);
      }
    }
    return seen;
  }

  /**
   * Every chain of devices stacked on `name` that makes it busy: each ends at a device
   * that is mounted or swap, or at the top of a stack that holds anything but unused
   * partitions. The first layer of each chain is `name` itself.
   */
  async busyChains(name: string): Promise<StackLayer[][]> {
    const chains: StackLayer[][] = [];
    const walk = async (chain: StackLayer[]): Promise<void> => {
      const top = chain[chain.length - 1]!;
      const uppers = (await this.above(top.name)).filter((upper) => !chain.some((layer) => layer.name === upper));
      const stacked = chain.slice(1).some((layer) => layer.kind !== 'partition');
      const inUse = chain.length > 1 && (top.mountPoints.length > 0 || top.swap);
      if (inUse || (uppers.length === 0 && stacked)) chains.push(chain);
      for (const upper of uppers) await walk([...chain, await this.layer(upper)]);
    };
    await walk([await this.layer(name)]);
    return chains;
  }

  private async resolveSwaps(): Promise<Set<string>> {
    const names = new Set<string>();
    for (const swap of this.view.swaps) {
      const device = await this.deviceBehind(swap);
      if (device?.through === 'device') names.add(device.name);
    }
    return names;
  }
}

function describeLayer(layer: StackLayer): string {
  if (layer.kind === 'loop' && layer.label) return `${layer.name} (over ${layer.label})`;
  return layer.label ? `${layer.name} (${layer.label})` : layer.name;
}

/** What the top of a chain is doing, in words. */
function describeUse(layer: StackLayer): string {
  if (layer.mountPoints.length) return `mounted at ${layer.mountPoints.join(', ')}`;
  if (layer.swap) return 'in use as swap';
  const uses: Record<LayerKind, string> = {
    lvm: 'an active LVM logical volume',
    crypt: 'an open dm-crypt/LUKS mapping',
    dm: 'an active device-mapper device',
    md: 'an assembled md array',
    loop: 'a loop device over it',
    bcache: 'a bcache device over it',
    zram: 'a zram device writing back to it',
    partition: 'a partition',
    disk: 'a device stacked on it',
  };
  return uses[layer.kind];
}

/** `/dev/sdb → sdb2 → dm-0 (vg0-root) mounted at /`: the target is named by the path given. */
export function describeChain(targetPath: string, chain: StackLayer[]): string {
  const [, ...rest] = chain;
  const top = chain[chain.length - 1]!;
  const busy = top.mountPoints.length > 0 || top.swap;
  return `${[targetPath, ...rest.map(describeLayer)].join(' → ')} ${busy ? describeUse(top) : `is ${describeUse(top)}`}`;
}
