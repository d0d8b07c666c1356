// What a restore does after the bytes are down: grow the last filesystem when asked,
// and the checks before it says done: fsck of each filesystem it knows, and a restored
// Linux root's /etc/fstab naming only filesystems that exist on the target.
import fs from 'node:fs/promises';
import { execa } from 'execa';
import type { Disk, Volume } from '../../src/format/manifest.js';
import { DeviceBlockReader } from '../block-reader.js';
import type { DeviceInfo } from '../device.js';
import { filesystemModules } from '../fs/registry.js';
import { swapRecreateArgs } from '../fs/swap.js';
import { withWindow } from '../loop.js';

export interface RestoreCheck {
  check: string;
  ok: boolean;
  detail: string;
}

const FSCK: Record<string, (device: string) => string[]> = {
  ext2: (device) => ['e2fsck', '-fn', device],
  ext3: (device) => ['e2fsck', '-fn', device],
  ext4: (device) => ['e2fsck', '-fn', device],
  vfat: (device) => ['fsck.fat', '-n', device],
  ntfs: (device) => ['ntfsfix', '--no-action', device],
};

/** fsck -n of every restored filesystem the field has a checker for. */
export async function fsckVolumes(
  target: string,
  volumes: { volume: Volume; offset: number; size: number }[],
): Promise<RestoreCheck[]> {
  const checks: RestoreCheck[] = [];
  for (const { volume, offset, size } of volumes) {
    const type = volume.filesystem?.type;
    const command = type ? FSCK[type] : undefined;
    if (!command) continue;
    const check = `fsck of ${volume.id} (${type})`;
    try {
      const result = await withWindow(target, offset, size, { readOnly: true }, (device) => {
        const [program, ...args] = command(device);
        return execa(program!, args, { reject: false });
      });
      const output = `${String(result.stdout)}\n${String(result.stderr)}`
        .trim()
        .split('\n')
        .slice(-2)
        .join(' ')
        .slice(0, 300);
      checks.push({
        check,
        ok: result.exitCode === 0,
        detail: result.exitCode === 0 ? 'clean' : `exit ${result.exitCode}: ${output}`,
      });
    } catch (error) {
      checks.push({ check, ok: false, detail: `could not run: ${(error as Error).message}` });
    }
  }
  return checks;
}

/** Grow the filesystem of a partition that was grown; returns what was done. */
export async function growFilesystem(
  target: string,
  volume: Volume,
  offset: number,
  size: number,
): Promise<RestoreCheck> {
  const type = volume.filesystem?.type ?? 'raw';
  const check = `grow ${volume.id} (${type}) to ${size} bytes`;
  return withWindow(target, offset, size, {}, async (device) => {
    let steps: string[][];
    if (type.startsWith('ext'))
      steps = [
        ['e2fsck', '-fy', device],
        ['resize2fs', device],
      ];
    else if (type === 'ntfs') steps = [['ntfsresize', '--force', '--force', '--no-progress-bar', device]];
    else if (type === 'swap' && volume.filesystem)
      steps = [['mkswap', ...swapRecreateArgs({ ...volume.filesystem, totalBytes: size }, device)]];
    else return { check, ok: true, detail: `${type} is not grown: the extra space stays free` };
    for (const [program, ...args] of steps) {
      const result = await execa(program!, args, { reject: false, input: 'y\n' });
      // e2fsck -fy exits 1 when it fixed something trivial, which resize2fs then accepts.
      const fine = result.exitCode === 0 || (program === 'e2fsck' && result.exitCode === 1);
      if (!fine)
        return {
          check,
          ok: false,
          detail: `${program} exited ${result.exitCode}: ${String(result.stderr || result.stdout)
            .trim()
            .split('\n')
            .slice(-2)
            .join(' ')}`,
        };
    }
    return { check, ok: true, detail: 'grown' };
  });
}

interface Identity {
  uuids: Set<string>;
  labels: Set<string>;
  partUuids: Set<string>;
  partLabels: Set<string>;
}

/** Filesystem UUIDs and labels as found on the target now, plus its partition ids. */
async function targetIdentity(
  target: DeviceInfo,
  disk: Disk,
  tableOnTarget: Disk['partitionTable'],
): Promise<Identity> {
  const identity: Identity = { uuids: new Set(), labels: new Set(), partUuids: new Set(), partLabels: new Set() };
  const handle = await fs.open(target.path, 'r');
  try {
    for (const volume of disk.volumes) {
      if (volume.kind === 'gap' || !volume.filesystem) continue;
      const size =
        tableOnTarget.partitions.find((partition) => partition.number === volume.partitionNumber)?.size ?? volume.size;
      const reader = new DeviceBlockReader(handle, volume.offset, size, `${target.path} ${volume.id}`);
      for (const module of filesystemModules) {
        if (!(await module.detect(reader))) continue;
        try {
          const info = (await module.open(reader)).info;
          if (info.uuid) identity.uuids.add(info.uuid.toLowerCase());
          if (info.label) identity.labels.add(info.label);
        } catch {
          // A filesystem that does not open names nothing.
        }
        break;
      }
    }
  } finally {
    await handle.close();
  }
  for (const partition of tableOnTarget.partitions) {
    if (partition.guid) identity.partUuids.add(partition.guid.toLowerCase());
    if (partition.name) identity.partLabels.add(partition.name);
    if (tableOnTarget.diskId)
      identity.partUuids.add(`${tableOnTarget.diskId}-${partition.number.toString(16).padStart(2, '0')}`);
  }
  return identity;
}

function decodeFstabField(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Check each restored Linux root's /etc/fstab against what exists on the target. */
export async function checkFstab(
  target: DeviceInfo,
  disk: Disk,
  tableOnTarget: Disk['partitionTable'],
): Promise<RestoreCheck[]> {
  const ext = filesystemModules.find((module) => module.name === 'ext');
  if (!ext) return [];
  const checks: RestoreCheck[] = [];
  let identity: Identity | null = null;
  const handle = await fs.open(target.path, 'r');
  try {
    for (const volume of disk.volumes) {
      if (!volume.filesystem?.type.startsWith('ext')) continue;
      // A grown partition is larger on the target than in the image.
      const size =
        tableOnTarget.partitions.find((partition) => partition.number === volume.partitionNumber)?.size ?? volume.size;
      const reader = new DeviceBlockReader(handle, volume.offset, size, `${target.path} ${volume.id}`);
      const text = await readFstab(ext, reader);
      if (text === null) continue;
      identity ??= await targetIdentity(target, disk, tableOnTarget);
      checks.push(fstabCheck(volume.id, text, identity));
    }
  } finally {
    await handle.close();
  }
  return checks;
}

/** /etc/fstab of an ext filesystem, or null when it has none (or is not a root at all). */
async function readFstab(ext: (typeof filesystemModules)[number], reader: DeviceBlockReader): Promise<string | null> {
  try {
    const files = await (await ext.open(reader)).files?.();
    if (!files) return null;
    const node = await files.lookup('/etc/fstab');
    return (await files.read(node, 0, node.stat.size)).toString('utf8');
  } catch {
    return null;
  }
}

/** Every filesystem the fstab names by UUID, label or partition id must exist, unless nofail. */
function fstabCheck(volumeId: string, text: string, identity: Identity): RestoreCheck {
  const problems: string[] = [];
  let named = 0;
  for (const line of text.split('\n')) {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/);
    if (fields.length < 2 || !fields[0]) continue;
    const spec = decodeFstabField(fields[0]);
    const known = knownToTarget(spec, identity);
    if (known === null) continue;
    named++;
    if (!known && !(fields[3] ?? '').split(',').includes('nofail'))
      problems.push(`${spec} (for ${fields[1]}) is on no filesystem of the target`);
  }
  return {
    check: `/etc/fstab on ${volumeId}`,
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `all ${named} filesystems it names by UUID, label or partition id exist on the target`,
  };
}

/** Whether the target has what an fstab spec names; null for a spec by device path or other. */
function knownToTarget(spec: string, identity: Identity): boolean | null {
  const match =
    /^(UUID|LABEL|PARTUUID|PARTLABEL)=(.+)$/.exec(spec) ??
    /^\/dev\/disk\/by-(uuid|label|partuuid|partlabel)\/(.+)$/.exec(spec);
  if (!match) return null;
  const [, kind, value] = match;
  switch (kind!.toUpperCase()) {
    case 'UUID':
      return identity.uuids.has(value!.toLowerCase());
    case 'LABEL':
      return identity.labels.has(value!);
    case 'PARTUUID':
      return identity.partUuids.has(value!.toLowerCase());
    default:
      return identity.partLabels.has(value!);
  }
}
