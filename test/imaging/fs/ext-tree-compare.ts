// Walk a filesystem twice, through the kernel (a read-only mount, lstat, getfattr) and
// through our FileTree, and list every difference: type, size, mode, owner, times in
// nanoseconds, links, inode numbers, device numbers, symlink targets, contents, xattrs.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { FileNode, FileTree } from '../../../imaging/fs/filesystem.js';

export interface Facts {
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  inode: number;
  mtimeNs: string;
  ctimeNs: string;
  atimeNs: string;
  rdev?: number;
  target?: string;
  sha256?: string;
  entries?: string[];
  xattrs: Record<string, string>;
}

function typeOf(stats: import('node:fs').BigIntStats): string {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isBlockDevice()) return 'block-device';
  if (stats.isCharacterDevice()) return 'char-device';
  if (stats.isFIFO()) return 'fifo';
  return 'socket';
}

/** getfattr's quoting: octal escapes for unusual bytes, and backslash itself. */
function unquote(text: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let index = 0; index < raw.length; index++) {
    if (
      raw[index] === 0x5c &&
      index + 3 < raw.length &&
      /^[0-7]{3}$/.test(raw.subarray(index + 1, index + 4).toString())
    ) {
      bytes.push(parseInt(raw.subarray(index + 1, index + 4).toString(), 8));
      index += 3;
    } else bytes.push(raw[index]!);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** All extended attributes under `root` as `getfattr -R -P -d -m - -e hex` lists them, by path relative to root. */
export async function getfattrTree(root: string): Promise<Map<string, Record<string, string>>> {
  const result = new Map<string, Record<string, string>>();
  const { stdout } = await execa('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], {
    reject: false,
    maxBuffer: 256 << 20,
  });
  let current: Record<string, string> | null = null;
  for (const line of String(stdout).split('\n')) {
    if (line.startsWith('# file: ')) {
      const absolute = unquote(line.slice('# file: '.length));
      const relative = path.relative(root, absolute);
      current = {};
      result.set(`/${relative}`.replace(/\/$/, '') || '/', current);
    } else if (current && line.includes('=')) {
      const at = line.indexOf('=');
      current[line.slice(0, at)] = line.slice(at + 1).replace(/^0x/, '');
    }
  }
  return result;
}

function sortedKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// One read buffer for every file: fresh large buffers are slow to allocate here.
const readBuffer = Buffer.allocUnsafe(8 << 20);

async function sha256OfFile(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  const handle = await fs.open(file, 'r');
  try {
    const buffer = readBuffer;
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

/** Facts about every path under a mounted filesystem, by path from its root ('/', '/a', '/a/b'). */
export async function kernelFacts(root: string): Promise<Map<string, Facts>> {
  const xattrs = await getfattrTree(root);
  const result = new Map<string, Facts>();
  const walk = async (relative: string) => {
    const full = path.join(root, relative);
    const stats = await fs.lstat(full, { bigint: true });
    const key = relative === '' ? '/' : `/${relative}`;
    const facts: Facts = {
      type: typeOf(stats),
      size: Number(stats.size),
      mode: Number(stats.mode) & 0o7777,
      uid: Number(stats.uid),
      gid: Number(stats.gid),
      nlink: Number(stats.nlink),
      inode: Number(stats.ino),
      mtimeNs: String(stats.mtimeNs),
      ctimeNs: String(stats.ctimeNs),
      atimeNs: String(stats.atimeNs),
      xattrs: sortedKeys(xattrs.get(key) ?? {}),
    };
    if (facts.type === 'block-device' || facts.type === 'char-device') facts.rdev = Number(stats.rdev);
    if (facts.type === 'symlink') facts.target = await fs.readlink(full);
    if (facts.type === 'file') facts.sha256 = await sha256OfFile(full);
    result.set(key, facts);
    if (facts.type === 'directory') {
      const names = (await fs.readdir(full)).sort();
      facts.entries = names;
      for (const name of names) await walk(path.join(relative, name));
    }
  };
  await walk('');
  return result;
}

async function sha256OfNode(tree: FileTree, node: FileNode): Promise<string> {
  const hash = crypto.createHash('sha256');
  const piece = 8 << 20;
  for (let offset = 0; offset < node.stat.size; offset += piece)
    hash.update(await tree.read(node, offset, Math.min(piece, node.stat.size - offset)));
  return hash.digest('hex');
}

/** The same facts, read through a FileTree. */
export async function treeFacts(tree: FileTree): Promise<Map<string, Facts>> {
  const result = new Map<string, Facts>();
  const walk = async (key: string) => {
    const node = await tree.lookup(key);
    const { stat } = node;
    const xattrs: Record<string, string> = {};
    for (const [name, value] of await tree.xattrs(node)) xattrs[name] = value.toString('hex');
    const facts: Facts = {
      type: stat.type,
      size: stat.size,
      mode: stat.mode,
      uid: stat.uid,
      gid: stat.gid,
      nlink: stat.nlink,
      inode: stat.inode,
      mtimeNs: String(stat.mtimeNs),
      ctimeNs: String(stat.ctimeNs),
      atimeNs: String(stat.atimeNs),
      xattrs: sortedKeys(xattrs),
    };
    if (stat.rdev !== undefined) facts.rdev = stat.rdev;
    if (stat.type === 'symlink') facts.target = await tree.readlink(node);
    if (stat.type === 'file') facts.sha256 = await sha256OfNode(tree, node);
    result.set(key, facts);
    if (stat.type === 'directory') {
      const entries = await tree.readdir(node);
      const names = entries.map((entry) => entry.name).sort();
      facts.entries = names;
      for (const name of names) await walk(key === '/' ? `/${name}` : `${key}/${name}`);
    }
  };
  await walk('/');
  return result;
}

/** Every difference between two walks, as readable lines. */
export function differences(expected: Map<string, Facts>, actual: Map<string, Facts>): string[] {
  const lines: string[] = [];
  for (const [key, facts] of expected) {
    const other = actual.get(key);
    if (!other) {
      lines.push(`${key}: missing`);
      continue;
    }
    for (const field of Object.keys({ ...facts, ...other }) as (keyof Facts)[]) {
      const a = JSON.stringify(facts[field]);
      const b = JSON.stringify(other[field]);
      if (a !== b) lines.push(`${key}: ${field} is ${b}, expected ${a}`);
    }
  }
  for (const key of actual.keys()) if (!expected.has(key)) lines.push(`${key}: unexpected`);
  return lines;
}
