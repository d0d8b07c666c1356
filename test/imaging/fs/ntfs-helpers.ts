// Shared by the NTFS tests: volumes made with mkntfs, filled through an ntfs-3g mount,
// and the field's own tools (ntfsinfo, partclone.ntfs, blkid, the mount itself) read
// back as oracles to compare the module with.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Test } from 'tap';
import { type BlockReader, DeviceBlockReader } from '../../../imaging/block-reader.js';
import type { FileTree, OpenFilesystem } from '../../../imaging/fs/filesystem.js';
import { ntfsFilesystem } from '../../../imaging/fs/ntfs.js';
import { RangeList, type Range } from '../../../imaging/ranges.js';
import { makeImageFile, mount, run } from '../../helpers/disk.js';
import { copyRanges } from '../../helpers/ranges.js';
import { differences, type FactsByPath, fileTreeFacts, mountFacts } from '../../helpers/tree-compare.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A sparse image file holding a fresh NTFS volume (quick format). */
export async function makeNtfsImage(file: string, size: number, mkntfsArgs: string[] = []): Promise<string> {
  await makeImageFile(file, size);
  await run('mkntfs', ['--quick', '--force', ...mkntfsArgs, file]);
  return file;
}

/** Mount with ntfs-3g, run `action` on the mount point, unmount (also on failure). */
export async function withNtfsMount<T>(
  t: Teardown,
  image: string,
  action: (root: string) => Promise<T>,
  options?: string,
): Promise<T> {
  const mounted = await mount(t, image, { type: 'ntfs-3g', ...(options ? { options } : {}) });
  try {
    return await action(mounted.path);
  } finally {
    await mounted.unmount();
  }
}

export async function openNtfs(
  t: Teardown,
  file: string,
  offset = 0,
  size?: number,
): Promise<{ volume: OpenFilesystem; tree: FileTree; reader: BlockReader }> {
  const { reader, close } = await DeviceBlockReader.open(file, offset, size);
  t.teardown(close);
  const volume = await ntfsFilesystem.open(reader);
  return { volume, tree: await volume.files!(), reader };
}

/** The mount's facts; named streams (user.* xattrs) are compared on their own (mountXattrs). */
export function walkMount(root: string): Promise<FactsByPath> {
  return mountFacts(root, { xattrs: false });
}

/** The same walk through the module's FileTree, with readdir/lookup disagreements in `problems`. */
export function walkTree(tree: FileTree): Promise<{ files: FactsByPath; problems: string[] }> {
  return fileTreeFacts(tree, { xattrs: false });
}

/** Differences between two walks, as readable lines (empty = identical). Times compared to the microsecond. */
export function compareWalks(ours: FactsByPath, theirs: FactsByPath): string[] {
  return differences(theirs, ours, { timeResolutionNs: 1000n });
}

/** The clusters partclone.ntfs would copy, from its ddrescue domain log. */
export async function partcloneUsedRanges(image: string, scratch: string): Promise<RangeList> {
  const domain = path.join(scratch, 'partclone.domain');
  await run('partclone.ntfs', [
    '--domain',
    '--source',
    image,
    '--overwrite',
    domain,
    '--logfile',
    path.join(scratch, 'partclone.log'),
    '--quiet',
  ]);
  const ranges: Range[] = [];
  for (const line of (await fs.readFile(domain, 'utf8')).split('\n')) {
    const match = /^0x([0-9A-Fa-f]+)\s+0x([0-9A-Fa-f]+)\s+\+/.exec(line);
    if (match) ranges.push([parseInt(match[1]!, 16), parseInt(match[1]!, 16) + parseInt(match[2]!, 16)]);
  }
  return RangeList.of(ranges);
}

export interface NtfsinfoVolume {
  clusterSize: number;
  clusterCount: number;
  freeClusters: number;
  name: string;
  version: string;
}

/** `ntfsinfo -m`: the volume as ntfs-3g's own library reads it. */
export async function ntfsinfoVolume(image: string): Promise<NtfsinfoVolume> {
  const text = await run('ntfsinfo', ['-m', image]);
  const field = (label: string): string => {
    const match = new RegExp(`^\\s*${label}:\\s*(.*)$`, 'm').exec(text);
    if (!match) throw new Error(`ntfsinfo printed no "${label}"`);
    return match[1]!.trim();
  };
  return {
    clusterSize: Number(field('Cluster Size')),
    clusterCount: Number(field('Volume Size in Clusters')),
    freeClusters: Number(/^(\d+)/.exec(field('Free Clusters'))![1]),
    name: field('Volume Name'),
    version: field('Volume Version'),
  };
}

/** `ntfsfix --no-action`: exit code and what it printed. */
export async function ntfsfixCheck(image: string): Promise<{ exitCode: number; output: string }> {
  const result = await execa('ntfsfix', ['--no-action', image], { reject: false, all: true });
  return { exitCode: result.exitCode ?? -1, output: String(result.all ?? '') };
}

/** Set a Linux extended attribute through python3 (Node has no setxattr). */
export async function setXattr(file: string, name: string, value: Buffer): Promise<void> {
  await run('python3', [
    '-c',
    'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))',
    file,
    name,
    value.toString('hex'),
  ]);
}

/** The user.* extended attributes of every file under a mount, as ntfs-3g lists them. */
export async function mountXattrs(root: string): Promise<Map<string, Map<string, string>>> {
  const script = `
import os, sys, json
root = sys.argv[1]
out = {}
for directory, dirs, files in os.walk(root):
    for name in dirs + files:
        full = os.path.join(directory, name)
        if os.path.islink(full): continue
        names = [n for n in os.listxattr(full, follow_symlinks=False) if n.startswith('user.')]
        if names:
            out['/' + os.path.relpath(full, root)] = {n: os.getxattr(full, n).hex() for n in names}
print(json.dumps(out))
`;
  const parsed = JSON.parse(await run('python3', ['-c', script, root])) as Record<string, Record<string, string>>;
  return new Map(Object.entries(parsed).map(([file, attributes]) => [file, new Map(Object.entries(attributes))]));
}

/**
 * The used-range map of a volume image checked three ways: it equals the clusters
 * partclone.ntfs copies plus the backup boot sector; its size agrees with ntfsinfo and
 * ntfscluster; and a copy of only those ranges into zeros passes `ntfsfix -n` and
 * mounts with ntfs-3g showing the same files and contents, which the FileTree also
 * reads. Leaving out the backup boot sector must make ntfsfix fail.
 */
export async function checkUsedRanges(t: Test, image: string, scratch: string): Promise<void> {
  const size = (await fs.stat(image)).size;
  const { volume, tree } = await openNtfs(t, image);
  const used = await volume.usedRanges();

  const partclone = await partcloneUsedRanges(image, scratch);
  const backupBootSector: Range = [size - 512, size];
  t.same(
    used.ranges,
    RangeList.of([...partclone.ranges, backupBootSector]).ranges,
    'the clusters partclone.ntfs copies, and the backup boot sector',
  );

  const ntfsinfo = await ntfsinfoVolume(image);
  t.equal(volume.info.blockSize, ntfsinfo.clusterSize, 'cluster size');
  t.equal(volume.info.totalBytes, ntfsinfo.clusterCount * ntfsinfo.clusterSize, 'total bytes');
  t.equal(
    volume.info.usedBytes,
    (ntfsinfo.clusterCount - ntfsinfo.freeClusters) * ntfsinfo.clusterSize,
    'used bytes = clusters ntfsinfo does not count as free',
  );
  t.equal(used.totalBytes, volume.info.usedBytes + 512, 'the map is the used clusters plus one sector');
  const ntfscluster = await run('ntfscluster', ['--info', image]);
  t.equal(
    Number(/clusters of free space\s*:\s*(\d+)/.exec(ntfscluster)?.[1]),
    ntfsinfo.clusterCount - volume.info.usedBytes / volume.info.blockSize,
    'free clusters as ntfscluster counts them',
  );

  const copy = path.join(scratch, 'copy.img');
  await copyRanges(image, copy, used);
  const check = await ntfsfixCheck(copy);
  t.equal(check.exitCode, 0, 'ntfsfix -n finds the copy clean', { output: check.output });
  t.match(check.output, /alternate boot sector\.\.\. OK/);

  const original = await withNtfsMount(t, image, walkMount, 'ro');
  const copied = await withNtfsMount(t, copy, walkMount, 'ro');
  t.ok(original.size > 0);
  t.same(compareWalks(copied, original), [], 'the copy mounts with the same files and contents');
  const ours = await walkTree(tree);
  t.same(compareWalks(ours.files, original), [], 'and the FileTree reads them as ntfs-3g does');

  const withoutBackup = path.join(scratch, 'without-backup.img');
  await copyRanges(image, withoutBackup, RangeList.of(used.ranges.filter(([start]) => start < backupBootSector[0])));
  t.not((await ntfsfixCheck(withoutBackup)).exitCode, 0, 'ntfsfix -n fails when the backup boot sector is left out');
}
