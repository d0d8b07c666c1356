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
export async function makeExtImage(
  t: Teardown,
  type: 'ext2' | 'ext3' | 'ext4',
  size: number,
  options: string[] = [],
): Promise<string> {
  const directory = await tempDir(t, 'b365-ext-');
  const image = path.join(directory, `${type}.img`);
  await makeImageFile(image, size);
  await run('mke2fs', ['-q', '-F', '-t', type, ...options, image]);
  return image;
}

/** Mount an image read-write through a loop device, run `fill`, then unmount and detach. */
export async function withMounted<T>(
  t: Teardown,
  image: string,
  work: (root: string) => Promise<T>,
  options: { readOnly?: boolean } = {},
): Promise<T> {
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
      result.set(relative, {
        type: 'file',
        sha256: crypto
          .createHash('sha256')
          .update(await fs.readFile(full))
          .digest('hex'),
      });
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
        await writeFully(output, buffer.subarray(0, bytesRead), position, target);
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
      for (const part of free[1]!
        .split(',')
        .map((text) => text.trim())
        .filter(Boolean)) {
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
  return Object.fromEntries(
    stdout
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** `e2fsck -fn`: exit code and output (0 means clean). */
export async function e2fsckReadOnly(image: string): Promise<{ exitCode: number; output: string }> {
  const result = await execa('e2fsck', ['-fn', image], { reject: false, all: true });
  return { exitCode: result.exitCode ?? -1, output: String(result.all ?? '') };
}

/**
 * The kinds of inode a file reader must get right, under `root/special`: Unicode names,
 * fast and slow symlinks, hard links, user/trusted xattrs (small and large), POSIX
 * ACLs, device nodes, a fifo, ids above 65535 and nanosecond times (also past 2038
 * and before 1970).
 */
export async function fillSpecialFiles(root: string, options: { largeXattrBytes?: number } = {}): Promise<void> {
  const base = path.join(root, 'special');
  await fs.mkdir(base, { recursive: true });
  for (const name of ['héllo wörld.txt', '日本語のファイル名', '🎉 party', 'e\u0301 combining', 'tab\tand newline\n']) {
    await fs.writeFile(path.join(base, name), `content of ${name}\n`);
  }
  await fs.symlink('short-target', path.join(base, 'fast-symlink'));
  await fs.symlink(`${'a-long-directory-name/'.repeat(12)}target-file`, path.join(base, 'slow-symlink'));
  await fs.symlink('/special/hardlink-a', path.join(base, 'absolute-symlink'));
  await fs.writeFile(path.join(base, 'hardlink-a'), 'shared by three names\n');
  await fs.link(path.join(base, 'hardlink-a'), path.join(base, 'hardlink-b'));
  await fs.mkdir(path.join(base, 'elsewhere'));
  await fs.link(path.join(base, 'hardlink-a'), path.join(base, 'elsewhere', 'hardlink-c'));

  const tagged = path.join(base, 'with-xattrs');
  await fs.writeFile(tagged, 'has attributes\n');
  await run('setfattr', ['-n', 'user.small', '-v', 'hello', tagged]);
  await run('setfattr', ['-n', 'user.binary', '-v', '0x00ff10ee', tagged]);
  await run('setfattr', ['-n', 'trusted.secret', '-v', 'only-root', tagged]);
  await run('setfattr', ['-n', 'security.label', '-v', 'system_u:object_r:test_t', tagged]);
  // Too large for the inode body: lands in the external attribute block.
  await run('setfattr', [
    '-n',
    'user.large',
    '-v',
    `0x${patternBytes(5, options.largeXattrBytes ?? 1500).toString('hex')}`,
    tagged,
  ]);
  await run('setfattr', ['-n', 'user.on-directory', '-v', 'yes', path.join(base, 'elsewhere')]);

  const withAcl = path.join(base, 'with-acl');
  await fs.writeFile(withAcl, 'has an ACL\n');
  await run('setfacl', ['-m', 'u:1234:rwx,g:2345:r-x,u:70000:r--,m::rwx', withAcl]);
  const aclDirectory = path.join(base, 'acl-dir');
  await fs.mkdir(aclDirectory);
  await run('setfacl', ['-m', 'u:1234:rwx', aclDirectory]);
  await run('setfacl', ['-d', '-m', 'u:1234:r-x,g::r-x,o::---', aclDirectory]);
  await fs.writeFile(path.join(aclDirectory, 'inherits'), 'inherits the default ACL\n');

  await run('mknod', [path.join(base, 'null-like'), 'c', '1', '3']);
  await run('mknod', [path.join(base, 'loop-like'), 'b', '7', '200']);
  await run('mknod', [path.join(base, 'big-numbers'), 'c', '300', '70000']);
  await run('mkfifo', [path.join(base, 'fifo')]);

  const owned = path.join(base, 'high-ids');
  await fs.writeFile(owned, 'owned by large ids\n');
  await fs.chown(owned, 100000, 200000);
  await fs.chmod(owned, 0o4751);
  await fs.chmod(path.join(base, 'elsewhere'), 0o1777);

  const timed = path.join(base, 'timestamps');
  await fs.mkdir(timed);
  const times: [string, string][] = [
    ['nanoseconds', '2021-03-04 05:06:07.123456789 UTC'],
    ['after-2038', '2100-01-02 03:04:05.987654321 UTC'],
    ['before-1970', '1960-07-08 09:10:11.5 UTC'],
  ];
  for (const [name, date] of times) {
    const file = path.join(timed, name);
    await fs.writeFile(file, `${name}\n`);
    await run('touch', ['-h', '-m', '-d', date, file]);
    await run('touch', ['-h', '-a', '-d', date, file]);
  }
}
