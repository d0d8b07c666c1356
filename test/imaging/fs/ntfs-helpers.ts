// Shared by the NTFS tests: volumes made with mkntfs, filled through an ntfs-3g mount,
// and the field's own tools (ntfsinfo, partclone.ntfs, blkid, the mount itself) read
// back as oracles to compare the module with.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Test } from 'tap';
import { checkRange, DeviceBlockReader, type BlockReader } from '../../../imaging/block-reader.js';
import type { FileTree, FileType, OpenFilesystem } from '../../../imaging/fs/filesystem.js';
import { ntfsFilesystem } from '../../../imaging/fs/ntfs.js';
import { RangeList, type Range } from '../../../imaging/ranges.js';
import { makeImageFile, mount, run } from '../../helpers/disk.js';

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

/** A volume held in memory, for corrupting freely. */
export class MemoryBlockReader implements BlockReader {
  constructor(
    readonly bytes: Buffer,
    readonly description: string,
  ) {}

  get size(): number {
    return this.bytes.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length);
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }
}

export interface WalkedFile {
  type: FileType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  inode: number;
  mtimeMs: number;
  ctimeMs: number;
  atimeMs: number;
  target?: string;
  sha256?: string;
  rdev?: number;
}

function typeOf(stats: {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'char-device';
  return 'block-device';
}

/** One read buffer for every file (walks run one at a time): allocating 8 MiB per small file would be most of a walk. */
const hashBuffer = Buffer.alloc(8 << 20);

async function hashMountedFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await fs.open(file, 'r');
  try {
    const buffer = hashBuffer;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** Every entry under a mounted directory, keyed by its path from the root ("/a/b"). */
export async function walkMount(root: string): Promise<Map<string, WalkedFile>> {
  const result = new Map<string, WalkedFile>();
  const visit = async (relative: string): Promise<void> => {
    for (const name of await fs.readdir(path.join(root, relative))) {
      const entryPath = relative === '/' ? `/${name}` : `${relative}/${name}`;
      const full = path.join(root, entryPath);
      const stats = await fs.lstat(full, { bigint: true });
      const type = typeOf(stats);
      const walked: WalkedFile = {
        type,
        size: Number(stats.size),
        mode: Number(stats.mode & 0o7777n),
        uid: Number(stats.uid),
        gid: Number(stats.gid),
        nlink: Number(stats.nlink),
        inode: Number(stats.ino),
        mtimeMs: Number(stats.mtimeNs / 1000n) / 1000,
        ctimeMs: Number(stats.ctimeNs / 1000n) / 1000,
        atimeMs: Number(stats.atimeNs / 1000n) / 1000,
      };
      if (type === 'symlink') walked.target = await fs.readlink(full);
      if (type === 'file') walked.sha256 = await hashMountedFile(full);
      if (type === 'char-device' || type === 'block-device') walked.rdev = Number(stats.rdev);
      result.set(entryPath, walked);
      if (type === 'directory') await visit(entryPath);
    }
  };
  await visit('/');
  return result;
}

/**
 * The same walk through the module's FileTree. Also checks that readdir's types and
 * inodes agree with lookup; disagreements are returned in `problems`.
 */
export async function walkTree(tree: FileTree): Promise<{ files: Map<string, WalkedFile>; problems: string[] }> {
  const files = new Map<string, WalkedFile>();
  const problems: string[] = [];
  const visit = async (directoryPath: string): Promise<void> => {
    const directory = await tree.lookup(directoryPath);
    for (const entry of await tree.readdir(directory)) {
      const entryPath = directoryPath === '/' ? `/${entry.name}` : `${directoryPath}/${entry.name}`;
      const node = await tree.lookup(entryPath);
      if (entry.type !== node.stat.type)
        problems.push(`${entryPath}: readdir says ${entry.type}, lookup says ${node.stat.type}`);
      if (entry.inode !== node.inode)
        problems.push(`${entryPath}: readdir says inode ${entry.inode}, lookup says ${node.inode}`);
      const { stat } = node;
      const walked: WalkedFile = {
        type: stat.type,
        size: stat.size,
        mode: stat.mode,
        uid: stat.uid,
        gid: stat.gid,
        nlink: stat.nlink,
        inode: stat.inode,
        mtimeMs: stat.mtimeMs,
        ctimeMs: stat.ctimeMs,
        atimeMs: stat.atimeMs,
      };
      if (stat.type === 'symlink') walked.target = await tree.readlink(node);
      if (stat.type === 'file') walked.sha256 = await hashTreeFile(tree, node);
      if (stat.rdev !== undefined) walked.rdev = stat.rdev;
      files.set(entryPath, walked);
      if (stat.type === 'directory') await visit(entryPath);
    }
  };
  await visit('/');
  return { files, problems };
}

export async function hashTreeFile(tree: FileTree, node: Awaited<ReturnType<FileTree['lookup']>>): Promise<string> {
  const hash = createHash('sha256');
  const step = 8 << 20;
  for (let offset = 0; offset < node.stat.size; offset += step) {
    const piece = await tree.read(node, offset, step);
    const expected = Math.min(step, node.stat.size - offset);
    if (piece.length !== expected)
      throw new Error(`${node.path}: read ${piece.length} bytes at ${offset}, expected ${expected}`);
    hash.update(piece);
  }
  return hash.digest('hex');
}

/** Differences between two walks, as readable lines (empty = identical). Times compared to the microsecond. */
export function compareWalks(ours: Map<string, WalkedFile>, theirs: Map<string, WalkedFile>): string[] {
  const differences: string[] = [];
  for (const name of theirs.keys()) if (!ours.has(name)) differences.push(`${name}: missing`);
  for (const name of ours.keys()) if (!theirs.has(name)) differences.push(`${name}: not in the mount`);
  for (const [name, expected] of theirs) {
    const actual = ours.get(name);
    if (!actual) continue;
    for (const field of Object.keys(expected) as Array<keyof WalkedFile>) {
      const a = actual[field];
      const e = expected[field];
      const same =
        typeof a === 'number' && typeof e === 'number' && field.endsWith('Ms') ? Math.abs(a - e) < 0.002 : a === e;
      if (!same) differences.push(`${name}: ${field} is ${String(a)}, ntfs-3g says ${String(e)}`);
    }
  }
  return differences;
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

/** `blkid -p`: the serial and label util-linux reads from the volume (label null when none). */
export async function blkid(device: string): Promise<{ uuid: string; label: string | null }> {
  const tag = async (name: string): Promise<string> =>
    (await execa('blkid', ['-p', '-o', 'value', '-s', name, device], { reject: false })).stdout.replace(/\n$/, '');
  const label = await tag('LABEL');
  return { uuid: await tag('UUID'), label: label === '' ? null : label };
}

/** An all-zero image of the source's size holding only the given ranges of the source. */
export async function copyRanges(source: string, target: string, ranges: RangeList): Promise<void> {
  const size = (await fs.stat(source)).size;
  await makeImageFile(target, size);
  const input = await fs.open(source, 'r');
  const output = await fs.open(target, 'r+');
  try {
    const buffer = Buffer.alloc(8 << 20);
    for (const [start, end] of ranges.ranges) {
      for (let position = start; position < end; position += buffer.length) {
        const length = Math.min(buffer.length, end - position);
        const { bytesRead } = await input.read(buffer, 0, length, position);
        await output.write(buffer, 0, bytesRead, position);
      }
    }
  } finally {
    await input.close();
    await output.close();
  }
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
