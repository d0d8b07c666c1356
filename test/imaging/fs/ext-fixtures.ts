// Real ext2/3/4 filesystems for the ext tests: made with mke2fs on sparse image files,
// filled through a loop mount, and read back with the field's own tools (dumpe2fs,
// blkid, e2fsck, getfattr, the kernel's driver) as oracles.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { writeFully } from '../../../imaging/device.js';
import type { RangeList } from '../../../imaging/ranges.js';
import { attachLoop, makeImageFile, mount, run } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const MiB = 1 << 20;

/** A sparse image of `size` bytes with a filesystem made by `mke2fs -t type ...options`. */
export async function makeExtImage(t: Teardown, type: 'ext2' | 'ext3' | 'ext4', size: number, options: string[] = []): Promise<string> {
  const directory = await tempDir(t, 'b365-ext-');
  const image = path.join(directory, `${type}.img`);
  await makeImageFile(image, size);
  await run('mke2fs', ['-q', '-F', '-t', type, ...options, image]);
  return image;
}

/** Mount an image read-write through a loop device, run `fill`, then unmount and detach. */
export async function withMounted<T>(t: Teardown, image: string, work: (root: string) => Promise<T>, options: { readOnly?: boolean } = {}): Promise<T> {
  const loop = await attachLoop(t, image, { readOnly: options.readOnly });
  const mounted = await mount(t, loop.device, { options: options.readOnly ? 'ro' : undefined });
  try {
    return await work(mounted.path);
  } finally {
    await mounted.unmount();
    await loop.detach();
  }
}

/** Open an image file as a BlockReader for the whole file; closed at teardown. */
export async function openReader(t: Teardown, image: string): Promise<DeviceBlockReader> {
  const { reader, close } = await DeviceBlockReader.open(image);
  t.teardown(close);
  return reader;
}

/** Deterministic pseudo-random bytes (different for each seed). */
export function patternBytes(seed: number, length: number): Buffer {
  const result = Buffer.allocUnsafe(length);
  let counter = 0;
  for (let done = 0; done < length; done += 32) {
    const digest = crypto.createHash('sha256').update(`${seed}:${counter++}`).digest();
    digest.copy(result, done, 0, Math.min(32, length - done));
  }
  return result;
}

/** Fast deterministic bytes for large files: one random block repeated with a varying prefix. */
export function largePattern(seed: number, length: number): Buffer {
  const block = patternBytes(seed, 65536);
  const result = Buffer.allocUnsafe(length);
  for (let done = 0, index = 0; done < length; done += 65536, index++) {
    block.writeUInt32LE(index, 0);
    block.copy(result, done, 0, Math.min(65536, length - done));
  }
  return result;
}

export interface TreeEntry {
  type: string;
  sha256?: string;
  target?: string;
}

/** Every path under `root` with its type and the SHA-256 of file contents (symlinks not followed). */
export async function hashTree(root: string): Promise<Map<string, TreeEntry>> {
  const result = new Map<string, TreeEntry>();
  const walk = async (relative: string) => {
    const full = path.join(root, relative);
    const stats = await fs.lstat(full);
    if (stats.isDirectory()) {
      result.set(relative || '/', { type: 'directory' });
      for (const name of (await fs.readdir(full)).sort()) await walk(path.join(relative, name));
    } else if (stats.isSymbolicLink()) {
      result.set(relative, { type: 'symlink', target: await fs.readlink(full) });
    } else if (stats.isFile()) {
      result.set(relative, { type: 'file', sha256: crypto.createHash('sha256').update(await fs.readFile(full)).digest('hex') });
    } else {
      result.set(relative, { type: 'other' });
    }
  };
  await walk('');
  return result;
}

/** Write only `ranges` of `source` into a new all-zero (sparse) file of the same size. */
export async function copyRanges(source: string, target: string, ranges: RangeList): Promise<void> {
  const size = (await fs.stat(source)).size;
  await makeImageFile(target, size);
  const input = await fs.open(source, 'r');
  const output = await fs.open(target, 'r+');
  try {
    const buffer = Buffer.allocUnsafe(8 * MiB);
    for (const [start, end] of ranges.ranges) {
      for (let position = start; position < end; position += buffer.length) {
        const length = Math.min(buffer.length, end - position);
        const { bytesRead } = await input.read(buffer, 0, length, position);
        await writeFully(output, buffer.subarray(0, bytesRead), position);
      }
    }
  } finally {
    await input.close();
    await output.close();
  }
}

export interface DumpGroup {
  number: number;
  first: number;
  last: number;
  /** Free block ranges [first, last] as dumpe2fs prints them (with bigalloc: first blocks of free clusters). */
  free: [number, number][];
}

export interface Dump {
  header: Map<string, string>;
  groups: DumpGroup[];
}

/** `dumpe2fs` parsed: the header fields and each group's block range and free ranges. */
export async function dumpe2fs(image: string): Promise<Dump> {
  const { stdout } = await execa('dumpe2fs', [image], { stderr: 'ignore' });
  const header = new Map<string, string>();
  const groups: DumpGroup[] = [];
  let current: DumpGroup | null = null;
  for (const line of stdout.split('\n')) {
    const group = /^Group (\d+): \(Blocks (\d+)-(\d+)\)/.exec(line);
    if (group) {
      current = { number: Number(group[1]), first: Number(group[2]), last: Number(group[3]), free: [] };
      groups.push(current);
      continue;
    }
    const free = /^\s+Free blocks: ?(.*)$/.exec(line);
    if (free && current) {
      for (const part of free[1]!.split(',').map((text) => text.trim()).filter(Boolean)) {
        const [a, b] = part.split('-').map(Number);
        current.free.push([a!, b ?? a!]);
      }
      continue;
    }
    const field = /^([A-Za-z][^:]*):\s+(.*)$/.exec(line);
    if (field && !current) header.set(field[1]!, field[2]!.trim());
  }
  return { header, groups };
}

export async function blkid(image: string): Promise<Record<string, string>> {
  const { stdout } = await execa('blkid', ['-p', '-o', 'export', image]);
  return Object.fromEntries(stdout.split('\n').filter((line) => line.includes('=')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

/** `e2fsck -fn`: exit code and output (0 means clean). */
export async function e2fsckReadOnly(image: string): Promise<{ exitCode: number; output: string }> {
  const result = await execa('e2fsck', ['-fn', image], { reject: false, all: true });
  return { exitCode: result.exitCode ?? -1, output: String(result.all ?? '') };
}
