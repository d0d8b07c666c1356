// The oracle for file access: walk a filesystem twice, through the kernel (a read-only
// mount, lstat, getfattr) and through our FileTree, and list every difference: type, size,
// mode, owner, times, links, inodes, device numbers, symlink targets, contents, xattrs.
import crypto from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { FileNode, FileStat, FileTree, FileType } from '../../imaging/fs/filesystem.js';

/** What both walks record of one path. Times are nanoseconds as decimal strings (JSON-comparable). */
export interface FileFacts {
  type: FileType;
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
  /** A directory's entry names, sorted. */
  entries?: string[];
  /** Extended attributes as hex, by name; left out when the walk was asked not to read them. */
  xattrs?: Record<string, string>;
}

export interface WalkOptions {
  /** Compare extended attributes too (the kernel's through getfattr). */
  xattrs: boolean;
}

export type FactsByPath = Map<string, FileFacts>;

function typeOfStats(stats: BigIntStats): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isBlockDevice()) return 'block-device';
  if (stats.isCharacterDevice()) return 'char-device';
  if (stats.isFIFO()) return 'fifo';
  return 'socket';
}

function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

function sortedKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** getfattr's quoting: octal escapes for unusual bytes, and backslash itself. */
function unquote(text: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let index = 0; index < raw.length; index++) {
    const octal = raw.subarray(index + 1, index + 4).toString();
    if (raw[index] === 0x5c && index + 3 < raw.length && /^[0-7]{3}$/.test(octal)) {
      bytes.push(parseInt(octal, 8));
      index += 3;
    } else bytes.push(raw[index]!);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** All extended attributes under `root` as `getfattr -R -P -d -m - -e hex` lists them, by path from root. */
export async function getfattrTree(root: string): Promise<Map<string, Record<string, string>>> {
  const result = new Map<string, Record<string, string>>();
  const { stdout } = await execa('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], {
    reject: false,
    maxBuffer: 256 << 20,
  });
  let current: Record<string, string> | null = null;
  for (const line of String(stdout).split('\n')) {
    if (line.startsWith('# file: ')) {
      const relative = path.relative(root, unquote(line.slice('# file: '.length)));
      current = {};
      result.set(`/${relative}`.replace(/\/$/, '') || '/', current);
    } else if (current && line.includes('=')) {
      const at = line.indexOf('=');
      current[line.slice(0, at)] = line.slice(at + 1).replace(/^0x/, '');
    }
  }
  return result;
}

// One read buffer for every file (walks run one at a time): fresh large buffers are slow to allocate here.
const readBuffer = Buffer.allocUnsafe(8 << 20);

async function sha256OfFile(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  const handle = await fs.open(file, 'r');
  try {
    for (;;) {
      const { bytesRead } = await handle.read(readBuffer, 0, readBuffer.length, null);
      if (bytesRead === 0) break;
      hash.update(readBuffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** SHA-256 of a file read through the tree; a short read before the end of the file is a failure. */
export async function sha256OfNode(tree: FileTree, node: FileNode): Promise<string> {
  const hash = crypto.createHash('sha256');
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

function factsOfStats(stats: BigIntStats): FileFacts {
  return {
    type: typeOfStats(stats),
    size: Number(stats.size),
    mode: Number(stats.mode & 0o7777n),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    nlink: Number(stats.nlink),
    inode: Number(stats.ino),
    mtimeNs: String(stats.mtimeNs),
    ctimeNs: String(stats.ctimeNs),
    atimeNs: String(stats.atimeNs),
  };
}

/** Facts about every path under a mounted filesystem, by path from its root ('/', '/a', '/a/b'). */
export async function mountFacts(root: string, options: WalkOptions): Promise<FactsByPath> {
  const xattrs = options.xattrs ? await getfattrTree(root) : null;
  const result: FactsByPath = new Map();
  const walk = async (key: string) => {
    const full = path.join(root, key);
    const stats = await fs.lstat(full, { bigint: true });
    const facts = factsOfStats(stats);
    if (xattrs) facts.xattrs = sortedKeys(xattrs.get(key) ?? {});
    if (facts.type === 'block-device' || facts.type === 'char-device') facts.rdev = Number(stats.rdev);
    if (facts.type === 'symlink') facts.target = await fs.readlink(full);
    if (facts.type === 'file') facts.sha256 = await sha256OfFile(full);
    result.set(key, facts);
    if (facts.type !== 'directory') return;
    facts.entries = (await fs.readdir(full)).sort();
    for (const name of facts.entries) await walk(childPath(key, name));
  };
  await walk('/');
  return result;
}

/** Nanoseconds where the filesystem keeps them, else the milliseconds it has. */
function nanoseconds(ns: bigint | undefined, ms: number): string {
  return String(ns ?? BigInt(Math.round(ms * 1e6)));
}

function factsOfStat(stat: FileStat): FileFacts {
  const facts: FileFacts = {
    type: stat.type,
    size: stat.size,
    mode: stat.mode,
    uid: stat.uid,
    gid: stat.gid,
    nlink: stat.nlink,
    inode: stat.inode,
    mtimeNs: nanoseconds(stat.mtimeNs, stat.mtimeMs),
    ctimeNs: nanoseconds(stat.ctimeNs, stat.ctimeMs),
    atimeNs: nanoseconds(stat.atimeNs, stat.atimeMs),
  };
  if (stat.rdev !== undefined) facts.rdev = stat.rdev;
  return facts;
}

async function hexXattrs(tree: FileTree, node: FileNode): Promise<Record<string, string>> {
  const xattrs: Record<string, string> = {};
  for (const [name, value] of await tree.xattrs(node)) xattrs[name] = value.toString('hex');
  return sortedKeys(xattrs);
}

/**
 * The same facts read through a FileTree. Also checks that readdir's types and inodes agree
 * with lookup's; disagreements are returned in `problems`.
 */
export async function fileTreeFacts(
  tree: FileTree,
  options: WalkOptions,
): Promise<{ files: FactsByPath; problems: string[] }> {
  const files: FactsByPath = new Map();
  const problems: string[] = [];
  const walk = async (node: FileNode) => {
    const facts = factsOfStat(node.stat);
    if (options.xattrs) facts.xattrs = await hexXattrs(tree, node);
    if (node.stat.type === 'symlink') facts.target = await tree.readlink(node);
    if (node.stat.type === 'file') facts.sha256 = await sha256OfNode(tree, node);
    files.set(node.path, facts);
    if (node.stat.type !== 'directory') return;
    const entries = (await tree.readdir(node)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    facts.entries = entries.map((entry) => entry.name);
    for (const entry of entries) {
      const child = await tree.lookup(childPath(node.path, entry.name));
      if (entry.type !== child.stat.type)
        problems.push(`${child.path}: readdir says ${entry.type}, lookup says ${child.stat.type}`);
      if (entry.inode !== child.inode)
        problems.push(`${child.path}: readdir says inode ${entry.inode}, lookup says ${child.inode}`);
      await walk(child);
    }
  };
  await walk(await tree.lookup('/'));
  return { files, problems };
}

export interface CompareOptions {
  /** Compare times only to this many nanoseconds (a filesystem that keeps 100 ns ticks, a mount that rounds). */
  timeResolutionNs?: bigint;
}

const TIME_FIELDS = new Set<keyof FileFacts>(['mtimeNs', 'ctimeNs', 'atimeNs']);

function sameField(field: keyof FileFacts, expected: unknown, actual: unknown, resolution: bigint): boolean {
  if (TIME_FIELDS.has(field) && typeof expected === 'string' && typeof actual === 'string')
    return BigInt(expected) / resolution === BigInt(actual) / resolution;
  return JSON.stringify(expected) === JSON.stringify(actual);
}

/** Every difference between two walks, as readable lines (empty when they agree). */
export function differences(expected: FactsByPath, actual: FactsByPath, options: CompareOptions = {}): string[] {
  const resolution = options.timeResolutionNs ?? 1n;
  const lines: string[] = [];
  for (const [key, facts] of expected) {
    const other = actual.get(key);
    if (!other) {
      lines.push(`${key}: missing`);
      continue;
    }
    for (const field of Object.keys({ ...facts, ...other }) as (keyof FileFacts)[]) {
      if (!sameField(field, facts[field], other[field], resolution))
        lines.push(`${key}: ${field} is ${JSON.stringify(other[field])}, expected ${JSON.stringify(facts[field])}`);
    }
  }
  for (const key of actual.keys()) if (!expected.has(key)) lines.push(`${key}: unexpected`);
  return lines;
}
