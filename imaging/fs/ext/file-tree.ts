// Read-only access to the files of an ext2/3/4 volume: path lookup (lstat semantics),
// directory listings, file contents (holes and unwritten extents as zeros, inline data),
// symlink targets and extended attributes. Corruption met on the way becomes a
// FormatError that names the path being resolved.
import { FormatError, NotFoundError, UsageError } from '../../../src/core/errors.js';
import { RangeList, type Range } from '../../ranges.js';
import type { DirEntry, FileNode, FileStat, FileTree, FileType } from '../filesystem.js';
import { fileBlockMap, findRun, type FileExtent } from './block-map.js';
import { PromiseCache } from './cache.js';
import { parseDirectoryBlock, parseEntries, type RawDirEntry } from './directory.js';
import { MAX_READ_BYTES } from './group-descriptors.js';
import {
  hasBlockMap,
  INLINE_AREA_SIZE,
  InodeFlag,
  InodeTable,
  isFastSymlink,
  ROOT_INODE,
  type Inode,
  type Timestamp,
} from './inode.js';
import { isHurd } from './superblock.js';
import { readBlock, type ExtVolume } from './volume.js';
import { aclToXattr, blockXattrs, inodeXattrs, xattrName, XattrIndex, type RawXattr } from './xattr.js';

/** Symlinks followed while resolving one path, as the kernel's MAXSYMLINKS. */
const MAX_SYMLINKS = 40;
/** Longest symlink target read (PATH_MAX is 4096; anything far beyond is corruption). */
const MAX_SYMLINK_BYTES = 65536;

function milliseconds(time: Timestamp): number {
  return time.seconds * 1000 + time.nanoseconds / 1e6;
}

function nanoseconds(time: Timestamp): bigint {
  return BigInt(time.seconds) * 1_000_000_000n + BigInt(time.nanoseconds);
}

/** A device number as the C library's makedev() builds it (and Node's stat reports it). */
function deviceNumber(inode: Inode): number {
  const old = inode.blockArea.readUInt32LE(0);
  let major: number;
  let minor: number;
  if (old !== 0) {
    major = (old >>> 8) & 0xff;
    minor = old & 0xff;
  } else {
    const encoded = inode.blockArea.readUInt32LE(4);
    major = (encoded & 0xfff00) >>> 8;
    minor = (encoded & 0xff) | ((encoded >>> 12) & 0xfff00);
  }
  return (major & 0xfff) * 0x100 + (minor & 0xff) + (minor & 0xfff00) * 0x1000;
}

export function statOf(inode: Inode): FileStat {
  const stat: FileStat = {
    type: inode.type,
    size: inode.size,
    mode: inode.mode & 0o7777,
    uid: inode.uid,
    gid: inode.gid,
    nlink: inode.linksCount,
    mtimeMs: milliseconds(inode.mtime),
    atimeMs: milliseconds(inode.atime),
    ctimeMs: milliseconds(inode.ctime),
    mtimeNs: nanoseconds(inode.mtime),
    atimeNs: nanoseconds(inode.atime),
    ctimeNs: nanoseconds(inode.ctime),
    inode: inode.number,
  };
  if (inode.type === 'block-device' || inode.type === 'char-device') stat.rdev = deviceNumber(inode);
  return stat;
}

export class ExtFileTree implements FileTree {
  private readonly inodes: InodeTable;
  private readonly blockMaps = new PromiseCache<number, FileExtent[]>(1024);
  private readonly directories = new PromiseCache<number, Map<string, RawDirEntry>>(256);
  private readonly xattrBlocks = new PromiseCache<number, RawXattr[]>(256);
  private readonly description: string;

  constructor(private readonly volume: ExtVolume) {
    this.inodes = new InodeTable(volume);
    this.description = volume.reader.description;
  }

  async lookup(path: string): Promise<FileNode> {
    if (!path.startsWith('/')) throw new UsageError(`${path}: not an absolute path`);
    const given = path.split('/').filter((part) => part !== '' && part !== '.');
    const normalized = `/${given.join('/')}`;
    const pending = [...given];
    // The directories walked so far, so that '..' can step back.
    const stack: { name: string; inode: number }[] = [];
    let current = ROOT_INODE;
    let symlinks = 0;
    const walked = () => `/${stack.map((entry) => entry.name).join('/')}`;

    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === '..') {
        stack.pop();
        current = stack.length ? stack[stack.length - 1]!.inode : ROOT_INODE;
        continue;
      }
      const directoryPath = walked();
      const entries = await this.inContext(`resolving ${normalized}: ${directoryPath} (inode ${current})`, async () => {
        const directory = await this.inodes.read(current);
        if (directory.type !== 'directory')
          throw new NotFoundError(`${this.description}: ${normalized}: ${directoryPath} is not a directory`);
        return this.directoryEntries(directory);
      });
      const entry = entries.get(name);
      const entryPath = `${directoryPath === '/' ? '' : directoryPath}/${name}`;
      if (!entry) throw new NotFoundError(`${this.description}: ${normalized}: ${entryPath} does not exist`);
      const inode = await this.inContext(`resolving ${normalized}: ${entryPath} (inode ${entry.inode})`, () =>
        this.inodes.read(entry.inode),
      );
      if (pending.length === 0) return { path: normalized, inode: inode.number, stat: statOf(inode) };
      if (inode.type === 'symlink') {
        if (++symlinks > MAX_SYMLINKS)
          throw new NotFoundError(
            `${this.description}: ${normalized}: too many levels of symbolic links at ${entryPath}`,
          );
        const target = await this.inContext(`resolving ${normalized}: ${entryPath} (inode ${inode.number})`, () =>
          this.symlinkTarget(inode),
        );
        // Relative targets continue from the symlink's directory, absolute ones from the root.
        if (target.startsWith('/')) {
          stack.length = 0;
          current = ROOT_INODE;
        }
        pending.unshift(...target.split('/').filter((part) => part !== '' && part !== '.'));
        continue;
      }
      stack.push({ name, inode: inode.number });
      current = inode.number;
    }
    // The path ended on a directory reached through '..' (or is the root itself).
    const last = current;
    const inode = await this.inContext(`resolving ${normalized}: ${walked()} (inode ${last})`, () =>
      this.inodes.read(last),
    );
    return { path: normalized, inode: inode.number, stat: statOf(inode) };
  }

  async readdir(node: FileNode): Promise<DirEntry[]> {
    return this.inContext(`${node.path} (inode ${node.inode})`, async () => {
      const directory = await this.inodes.read(node.inode);
      if (directory.type !== 'directory') throw new UsageError(`${this.description}: ${node.path} is not a directory`);
      const entries = await this.directoryEntries(directory);
      const result: DirEntry[] = [];
      for (const entry of entries.values()) {
        let type: FileType | null = entry.type;
        if (type === null) type = (await this.inodes.read(entry.inode)).type;
        result.push({ name: entry.name, type, inode: entry.inode });
      }
      return result;
    });
  }

  async read(node: FileNode, offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new UsageError(`read of ${length} bytes at ${offset}: not a valid range`);
    return this.inContext(`${node.path} (inode ${node.inode})`, async () => {
      const inode = await this.inodes.read(node.inode);
      return this.readContent(inode, offset, length);
    });
  }

  async readlink(node: FileNode): Promise<string> {
    return this.inContext(`${node.path} (inode ${node.inode})`, async () => {
      const inode = await this.inodes.read(node.inode);
      if (inode.type !== 'symlink') throw new UsageError(`${this.description}: ${node.path} is not a symbolic link`);
      return this.symlinkTarget(inode);
    });
  }

  async xattrs(node: FileNode): Promise<Map<string, Buffer>> {
    return this.inContext(`${node.path} (inode ${node.inode})`, async () => {
      const inode = await this.inodes.read(node.inode);
      const hurd = isHurd(this.volume.superblock);
      const result = new Map<string, Buffer>();
      for (const entry of await this.rawXattrs(inode)) {
        const name = xattrName(entry, hurd);
        if (name === null) continue;
        let value = await this.xattrValue(entry);
        if (entry.index === XattrIndex.posixAclAccess || entry.index === XattrIndex.posixAclDefault)
          value = aclToXattr(value, `attribute ${name}`);
        result.set(name, value);
      }
      return result;
    });
  }

  async dataRanges(node: FileNode): Promise<RangeList> {
    return this.inContext(`${node.path} (inode ${node.inode})`, async () => {
      const inode = await this.inodes.read(node.inode);
      if (!this.hasBlockMap(inode)) return RangeList.full(inode.size);
      const { blockSize } = this.volume.superblock;
      const ranges: Range[] = [];
      for (const run of await this.blockMap(inode)) {
        if (!run.initialized) continue;
        const start = run.logical * blockSize;
        const end = Math.min(inode.size, (run.logical + run.length) * blockSize);
        if (start < end) ranges.push([start, end]);
      }
      return RangeList.of(ranges);
    });
  }

  /** Run `work`, turning corruption it meets into a FormatError that says where the walk was. */
  private async inContext<T>(where: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof FormatError)
        throw new FormatError(`${this.description}: ${where}: ${error.message}`, { cause: error });
      // A read past the end of a buffer means a structure was not checked well enough: still corrupt input, not a crash.
      if (error instanceof RangeError)
        throw new FormatError(`${this.description}: ${where}: malformed structure (${error.message})`, {
          cause: error,
        });
      throw error;
    }
  }

  private hasBlockMap(inode: Inode): boolean {
    return hasBlockMap(inode, this.volume.superblock);
  }

  private isFastSymlink(inode: Inode): boolean {
    return isFastSymlink(inode, this.volume.superblock);
  }

  private blockMap(inode: Inode): Promise<FileExtent[]> {
    return this.blockMaps.get(inode.number, () => fileBlockMap(this.volume, inode));
  }

  private async rawXattrs(inode: Inode): Promise<RawXattr[]> {
    const entries = inodeXattrs(inode, this.volume.superblock);
    if (inode.xattrBlock !== 0) {
      const block = inode.xattrBlock;
      entries.push(
        ...(await this.xattrBlocks.get(block, async () =>
          blockXattrs(await readBlock(this.volume, block, 'extended attribute block'), block, this.volume.superblock),
        )),
      );
    }
    return entries;
  }

  private async xattrValue(entry: RawXattr): Promise<Buffer> {
    if (Buffer.isBuffer(entry.value)) return entry.value;
    const holder = await this.inodes.read(entry.value.inode);
    if (!(holder.flags & InodeFlag.eaInode))
      throw new FormatError(`attribute ${entry.suffix} names inode ${holder.number}, which holds no attribute value`);
    if (holder.size < entry.value.size)
      throw new FormatError(
        `attribute ${entry.suffix}: inode ${holder.number} holds ${holder.size} bytes, not ${entry.value.size}`,
      );
    return this.readContent(holder, 0, entry.value.size);
  }

  /** Inline data: the 60 bytes of i_block, continued by the system.data attribute. */
  private inlineContent(inode: Inode): Buffer {
    const data = inodeXattrs(inode, this.volume.superblock).find(
      (entry) => entry.index === XattrIndex.system && entry.suffix === 'data',
    );
    const rest = data && Buffer.isBuffer(data.value) ? data.value : Buffer.alloc(0);
    return Buffer.concat([inode.blockArea, rest]);
  }

  private async readContent(inode: Inode, offset: number, length: number): Promise<Buffer> {
    if (offset >= inode.size) return Buffer.alloc(0);
    const wanted = Math.min(length, inode.size - offset);
    if (inode.flags & InodeFlag.encrypted)
      throw new FormatError(`inode ${inode.number} is encrypted; its contents cannot be read without the key`);
    if (inode.flags & InodeFlag.inlineData) {
      const content = this.inlineContent(inode);
      const result = Buffer.alloc(wanted);
      content.copy(result, 0, Math.min(offset, content.length), Math.min(offset + wanted, content.length));
      return result;
    }
    if (this.isFastSymlink(inode)) {
      if (inode.size > INLINE_AREA_SIZE)
        throw new FormatError(`inode ${inode.number}: fast symlink of ${inode.size} bytes does not fit in the inode`);
      return Buffer.from(inode.blockArea.subarray(offset, offset + wanted));
    }
    if (!this.hasBlockMap(inode)) return Buffer.alloc(wanted);

    const { blockSize } = this.volume.superblock;
    const runs = await this.blockMap(inode);
    const end = offset + wanted;
    const first = runs[findRun(runs, Math.floor(offset / blockSize))];
    // The common case, all of it inside one extent: one read, no copy.
    if (
      first?.initialized &&
      first.logical * blockSize <= offset &&
      (first.logical + first.length) * blockSize >= end
    ) {
      return this.volume.reader.read(first.physical * blockSize + (offset - first.logical * blockSize), wanted);
    }
    const result = Buffer.alloc(wanted);
    const lastBlock = Math.ceil(end / blockSize);
    for (
      let index = findRun(runs, Math.floor(offset / blockSize));
      index < runs.length && runs[index]!.logical < lastBlock;
      index++
    ) {
      const run = runs[index]!;
      if (!run.initialized) continue;
      const runStart = run.logical * blockSize;
      const from = Math.max(offset, runStart);
      const to = Math.min(end, runStart + run.length * blockSize);
      if (to <= from) continue;
      const volumeOffset = run.physical * blockSize + (from - runStart);
      for (let done = 0; done < to - from; done += MAX_READ_BYTES) {
        const size = Math.min(MAX_READ_BYTES, to - from - done);
        const bytes = await this.volume.reader.read(volumeOffset + done, size);
        bytes.copy(result, from - offset + done);
      }
    }
    return result;
  }

  private async symlinkTarget(inode: Inode): Promise<string> {
    if (inode.size > MAX_SYMLINK_BYTES)
      throw new FormatError(`symlink target of ${inode.size} bytes is implausibly long`);
    const bytes = await this.readContent(inode, 0, inode.size);
    return bytes.toString('utf8');
  }

  private directoryEntries(directory: Inode): Promise<Map<string, RawDirEntry>> {
    return this.directories.get(directory.number, async () => {
      if (directory.flags & InodeFlag.encrypted)
        throw new FormatError(
          `directory inode ${directory.number} is encrypted; its names cannot be read without the key`,
        );
      const raw =
        directory.flags & InodeFlag.inlineData
          ? this.inlineDirectoryEntries(directory)
          : await this.blockDirectoryEntries(directory);
      const entries = new Map<string, RawDirEntry>();
      for (const entry of raw) if (entry.name !== '.' && entry.name !== '..') entries.set(entry.name, entry);
      return entries;
    });
  }

  private inlineDirectoryEntries(directory: Inode): RawDirEntry[] {
    const { superblock } = this.volume;
    const where = `inode ${directory.number} at byte ${directory.offset}: inline directory`;
    // i_block starts with the parent's inode number; entries follow, then continue in system.data.
    const entries = parseEntries(directory.blockArea, 4, INLINE_AREA_SIZE, superblock, where, superblock.blockSize);
    const data = inodeXattrs(directory, superblock).find(
      (entry) => entry.index === XattrIndex.system && entry.suffix === 'data',
    );
    if (data && Buffer.isBuffer(data.value) && data.value.length > 0)
      entries.push(
        ...parseEntries(data.value, 0, data.value.length, superblock, `${where} (system.data)`, superblock.blockSize),
      );
    return entries;
  }

  private async blockDirectoryEntries(directory: Inode): Promise<RawDirEntry[]> {
    const { blockSize } = this.volume.superblock;
    const runs = await this.blockMap(directory);
    const blocks = Math.ceil(directory.size / blockSize);
    const entries: RawDirEntry[] = [];
    for (const run of runs) {
      if (!run.initialized || run.logical >= blocks) continue;
      const count = Math.min(run.length, blocks - run.logical);
      // Large runs are read in pieces, each parsed block by block.
      const perRead = Math.max(1, Math.floor(MAX_READ_BYTES / blockSize));
      for (let done = 0; done < count; done += perRead) {
        const take = Math.min(perRead, count - done);
        const bytes = await this.volume.reader.read((run.physical + done) * blockSize, take * blockSize);
        for (let k = 0; k < take; k++) {
          const block = bytes.subarray(k * blockSize, (k + 1) * blockSize);
          entries.push(
            ...parseDirectoryBlock(
              block,
              directory,
              run.logical + done + k,
              run.physical + done + k,
              this.volume.superblock,
            ),
          );
        }
      }
    }
    return entries;
  }
}
