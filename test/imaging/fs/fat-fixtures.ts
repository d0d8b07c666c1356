// FAT test volumes built with the field's own tools: mkfs.vfat makes them, mtools fills
// and reads them (the kernel here has no vfat driver), fsck.fat and partclone judge them.
// Everything runs with TZ=UTC so that mtools stores and shows times as we read them.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import type { FileNode, FileTree, FileType } from '../../../imaging/fs/filesystem.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const MTOOLS_ENV = { TZ: 'UTC', MTOOLS_SKIP_CHECK: '1', LC_ALL: 'C.UTF-8' };

export async function mtools(
  command: string,
  args: string[],
  options: { cwd?: string; reject?: boolean } = {},
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const result = await execa(command, args, {
    env: MTOOLS_ENV,
    cwd: options.cwd,
    reject: options.reject ?? true,
    stripFinalNewline: true,
  });
  return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 };
}

export interface MkfsOptions {
  fatType: 12 | 16 | 32;
  size: number;
  label?: string;
  serial?: string;
  sectorSize?: number;
  sectorsPerCluster?: number;
  rootEntries?: number;
  /** Make the filesystem this many 1 KiB blocks, not a whole number of tracks: it then ends in a partial cluster. */
  blocks?: number;
}

/** A sparse image file holding a fresh FAT filesystem. */
export async function makeFatImage(file: string, options: MkfsOptions): Promise<string> {
  const handle = await fs.open(file, 'w');
  await handle.truncate(options.size);
  await handle.close();
  const args = ['-F', String(options.fatType)];
  if (options.label !== undefined) args.push('-n', options.label);
  if (options.serial !== undefined) args.push('-i', options.serial);
  if (options.sectorSize !== undefined) args.push('-S', String(options.sectorSize));
  if (options.sectorsPerCluster !== undefined) args.push('-s', String(options.sectorsPerCluster));
  if (options.rootEntries !== undefined) args.push('-r', String(options.rootEntries));
  if (options.blocks !== undefined) args.push('-g', '1/1');
  await execa('mkfs.vfat', [...args, file, ...(options.blocks !== undefined ? [String(options.blocks)] : [])], {
    env: MTOOLS_ENV,
  });
  return file;
}

/** Copy every entry of a local directory (dot files too) into an image directory, keeping mtimes. */
export async function mcopyInto(image: string, source: string, target = '::/'): Promise<void> {
  const names = await fs.readdir(source);
  for (let index = 0; index < names.length; index += 200) {
    await mtools('mcopy', ['-s', '-m', '-o', '-i', image, ...names.slice(index, index + 200), target], { cwd: source });
  }
}

/** Extract the whole volume with mtools into `target` (which must exist), keeping mtimes. */
export async function mcopyOut(image: string, target: string): Promise<void> {
  await mtools('mcopy', ['-s', '-m', '-n', '-i', image, '::/*', target]);
}

export interface FsckResult {
  clean: boolean;
  output: string;
  usedClusters: number;
  clusters: number;
  dataStart: number;
  clusterSize: number;
}

export async function fsckFat(image: string): Promise<FsckResult> {
  const result = await execa('fsck.fat', ['-n', '-v', image], { reject: false, env: MTOOLS_ENV });
  const output = `${result.stdout}\n${result.stderr}`;
  const counts = /(\d+)\/(\d+) clusters/.exec(output);
  const dataStart = /Data area starts at byte (\d+)/.exec(output);
  const clusterSize = /(\d+) bytes per cluster/.exec(output);
  return {
    // fsck.fat exits 1 when it finds anything to repair, even with -n.
    clean: result.exitCode === 0 && counts !== null,
    output,
    usedClusters: counts ? Number(counts[1]) : -1,
    clusters: counts ? Number(counts[2]) : -1,
    dataStart: dataStart ? Number(dataStart[1]) : -1,
    clusterSize: clusterSize ? Number(clusterSize[1]) : -1,
  };
}

/** partclone's count of used sectors ("Space in use: ... = N Blocks"). */
export async function partcloneUsedBlocks(image: string): Promise<{ usedBlocks: number; blockSize: number }> {
  const result = await execa('partclone.fat', ['-c', '-s', image, '-O', '/dev/null'], { reject: false, all: true });
  const text = String(result.all);
  const used = /Space in use:.*= (\d+) Blocks/.exec(text);
  const blockSize = /Block size:\s*(\d+) Byte/.exec(text);
  if (!used || !blockSize) throw new Error(`partclone.fat printed no usage:\n${text}`);
  return { usedBlocks: Number(used[1]), blockSize: Number(blockSize[1]) };
}

export async function openReader(t: Teardown, file: string, offset = 0, size?: number): Promise<DeviceBlockReader> {
  const { reader, close } = await DeviceBlockReader.open(file, offset, size);
  t.teardown(close);
  return reader;
}

export interface Seen {
  type: FileType;
  size: number;
  mtimeMs: number;
  sha256: string | null;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Every path below the root of a FileTree, with type, size, mtime and content hash. */
export async function walkTree(tree: FileTree, chunk = 4 << 20): Promise<Map<string, Seen>> {
  const seen = new Map<string, Seen>();
  const visit = async (directory: FileNode): Promise<void> => {
    for (const entry of await tree.readdir(directory)) {
      const node = await tree.lookup(directory.path === '/' ? `/${entry.name}` : `${directory.path}/${entry.name}`);
      let hash: string | null = null;
      if (entry.type === 'file') {
        const hasher = createHash('sha256');
        for (let offset = 0; offset < node.stat.size; offset += chunk)
          hasher.update(await tree.read(node, offset, chunk));
        hash = hasher.digest('hex');
      }
      seen.set(node.path, {
        type: entry.type,
        size: entry.type === 'file' ? node.stat.size : 0,
        mtimeMs: node.stat.mtimeMs,
        sha256: hash,
      });
      if (entry.type === 'directory') await visit(node);
    }
  };
  await visit(await tree.lookup('/'));
  return seen;
}

/** The same for a local directory (what mtools extracted). */
export async function walkLocal(root: string): Promise<Map<string, Seen>> {
  const seen = new Map<string, Seen>();
  const visit = async (directory: string, prefix: string): Promise<void> => {
    for (const dirent of await fs.readdir(directory, { withFileTypes: true })) {
      const file = path.join(directory, dirent.name);
      const stats = await fs.stat(file);
      const key = `${prefix}/${dirent.name}`;
      if (dirent.isDirectory()) {
        seen.set(key, { type: 'directory', size: 0, mtimeMs: stats.mtimeMs, sha256: null });
        await visit(file, key);
      } else {
        seen.set(key, {
          type: 'file',
          size: stats.size,
          mtimeMs: stats.mtimeMs,
          sha256: sha256(await fs.readFile(file)),
        });
      }
    }
  };
  await visit(root, '');
  return seen;
}

/** Write `bytes` at `offset` of a file. */
export async function patch(file: string, offset: number, bytes: Buffer): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, offset);
  } finally {
    await handle.close();
  }
}
