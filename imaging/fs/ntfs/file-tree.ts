// Read-only files of an NTFS volume, shown as ntfs-3g shows them when root mounts the
// volume with its default options and no user mapping file:
// - owner 0:0 and permissions 0777 (NTFS ACLs are not mapped to modes), except WSL
//   special files, which ntfs-3g shows with no permission bits;
// - mtime/ctime/atime = $STANDARD_INFORMATION data change / MFT change / access times;
// - nlink = the record's link count for files, 1 for directories; a directory's size
//   is the size of its $I30 index allocation; inode = MFT record number;
// - DOS-only 8.3 names are not listed, nor the system files (records 0-15, $Extend);
// - named data streams ("file:stream") are extended attributes "user.<stream>", as
//   with ntfs-3g's default streams_interface=xattr;
// - compressed files are decompressed (LZNT1); encrypted (EFS) files cannot be read.
// Names are matched exactly (ntfs-3g's default is case-sensitive too); lookup also
// finds a file by its DOS 8.3 name, as ntfs-3g does, though readdir does not list it.
import { FormatError, NotFoundError, UserError } from '../../../src/core/errors.js';
import { RangeList } from '../../ranges.js';
import type { DirEntry, FileNode, FileStat, FileTree, FileType } from '../filesystem.js';
import type { AttributeData } from './attribute-data.js';
import { FileAttribute, FileNameNamespace, ntTimeToMs, ntTimeToNs } from './attributes.js';
import { readDirectoryIndex, type IndexEntry } from './directory-index.js';
import { AttributeType } from './mft-record.js';
import { SystemFile, type Mft, type NtfsInode } from './mft.js';
import { specialKind, type FileKind } from './special-files.js';

const DEFAULT_MODE = 0o777;
const CACHED_DIRECTORIES = 64;
/** Named streams larger than this are not returned as extended attributes. */
const MAX_NAMED_STREAM_BYTES = 64 << 20;

/** A directory's listed entries (no DOS-only names, no system files), and by name. */
interface Listing {
  entries: IndexEntry[];
  byName: Map<string, IndexEntry>;
  /** 8.3 names: not listed, but found by lookup, as with ntfs-3g. */
  byDosName: Map<string, IndexEntry>;
}

interface Described {
  stat: FileStat;
  kind: FileKind | null;
}

export class NtfsFileTree implements FileTree {
  private readonly described = new WeakMap<NtfsInode, Promise<Described>>();
  private readonly directories = new Map<number, Promise<Listing>>();

  constructor(private readonly mft: Mft) {}

  async lookup(path: string): Promise<FileNode> {
    if (!path.startsWith('/')) throw new NotFoundError(`${path}: not an absolute path`);
    const parts = path.split('/').filter((part) => part !== '' && part !== '.');
    let recordNumber: number = SystemFile.root;
    let walked = '';
    for (const part of parts) {
      const parentPath = walked || '/';
      walked += `/${part}`;
      if (part === '..') throw new NotFoundError(`${path}: ".." is not supported in paths`);
      const directory = await this.describePath(parentPath, recordNumber);
      if (directory.stat.type !== 'directory') throw new NotFoundError(`${path}: ${parentPath} is not a directory`);
      const listing = await this.withPath(parentPath, () => this.listingOf(recordNumber));
      const entry = listing.byName.get(part) ?? listing.byDosName.get(part);
      if (!entry) throw new NotFoundError(`${path}: no such file or directory`);
      const inode = await this.withPath(walked, () => this.mft.inode(entry.recordNumber));
      if (entry.recordSequence !== 0 && entry.recordSequence !== inode.record.sequenceNumber) {
        throw new FormatError(
          `${walked}: directory entry points to MFT record ${entry.recordNumber} with sequence ${entry.recordSequence}, but the record has sequence ${inode.record.sequenceNumber} (stale entry)`,
        );
      }
      recordNumber = entry.recordNumber;
    }
    const normalized = walked || '/';
    const { stat } = await this.describePath(normalized, recordNumber);
    return { path: normalized, inode: recordNumber, stat };
  }

  async readdir(node: FileNode): Promise<DirEntry[]> {
    const { stat } = await this.describePath(node.path, node.inode);
    if (stat.type !== 'directory') throw new UserError(`${node.path}: not a directory`);
    return this.withPath(node.path, async () => {
      const result: DirEntry[] = [];
      for (const entry of (await this.listingOf(node.inode)).entries) {
        result.push({ name: entry.name, inode: entry.recordNumber, type: await this.entryType(entry) });
      }
      return result;
    });
  }

  async read(node: FileNode, offset: number, length: number): Promise<Buffer> {
    const data = await this.contents(node);
    if (!data) return Buffer.alloc(0);
    return this.withPath(node.path, () => data.read(offset, length));
  }

  async readlink(node: FileNode): Promise<string> {
    const { kind } = await this.describePath(node.path, node.inode);
    if (kind?.linkTarget === undefined) throw new UserError(`${node.path}: not a symbolic link`);
    return kind.linkTarget;
  }

  async xattrs(node: FileNode): Promise<Map<string, Buffer>> {
    return this.withPath(node.path, async () => {
      const inode = await this.mft.inode(node.inode);
      const names = new Set(
        inode.attributes
          .filter((attribute) => attribute.type === AttributeType.data && attribute.name !== '')
          .map((attribute) => attribute.name),
      );
      const result = new Map<string, Buffer>();
      for (const name of [...names].sort()) {
        const stream = inode.data(AttributeType.data, name)!;
        if (stream.isEncrypted)
          throw new UserError(`${node.path}: named stream "${name}" is encrypted (EFS) and cannot be read`);
        if (stream.size > MAX_NAMED_STREAM_BYTES)
          throw new UserError(
            `${node.path}: named stream "${name}" is ${stream.size} bytes, too large for an extended attribute`,
          );
        result.set(`user.${name}`, await stream.readAll(MAX_NAMED_STREAM_BYTES));
      }
      return result;
    });
  }

  async dataRanges(node: FileNode): Promise<RangeList> {
    const data = await this.contents(node);
    return RangeList.of(data ? data.dataRanges() : []);
  }

  /** The unnamed $DATA of a regular file, checked to be readable. */
  private async contents(node: FileNode): Promise<AttributeData | null> {
    const { stat } = await this.describePath(node.path, node.inode);
    if (stat.type !== 'file') throw new UserError(`${node.path}: not a regular file`);
    return this.withPath(node.path, async () => {
      const inode = await this.mft.inode(node.inode);
      const data = inode.data(AttributeType.data);
      if (data?.isEncrypted) throw new UserError(`${node.path}: encrypted (EFS) NTFS files cannot be read`);
      return data;
    });
  }

  private listingOf(recordNumber: number): Promise<Listing> {
    let listing = this.directories.get(recordNumber);
    if (listing) return listing;
    listing = this.mft.inode(recordNumber).then(async (inode) => {
      // Not the root's "." entry, not the system files, not the DOS twins of long names.
      const all = (await readDirectoryIndex(inode)).filter((entry) => entry.recordNumber >= SystemFile.firstUser);
      const entries = all.filter((entry) => entry.namespace !== FileNameNamespace.dos);
      const dosNames = all.filter((entry) => entry.namespace === FileNameNamespace.dos);
      return {
        entries,
        byName: new Map(entries.map((entry) => [entry.name, entry])),
        byDosName: new Map(dosNames.map((entry) => [entry.name, entry])),
      };
    });
    listing.catch(() => this.directories.delete(recordNumber));
    if (this.directories.size >= CACHED_DIRECTORIES) this.directories.delete(this.directories.keys().next().value!);
    this.directories.set(recordNumber, listing);
    return listing;
  }

  /**
   * The type of a directory entry; the file is read only when its name's flags leave
   * doubt. A damaged file does not spoil its directory's listing: it gets the type its
   * flags suggest, and looking it up reports the damage.
   */
  private async entryType(entry: IndexEntry): Promise<FileType> {
    const guess: FileType =
      entry.fileAttributes & FileAttribute.reparsePoint
        ? 'symlink'
        : entry.fileAttributes & FileAttribute.directoryIndex
          ? 'directory'
          : 'file';
    if (!(entry.fileAttributes & (FileAttribute.reparsePoint | FileAttribute.system))) return guess;
    try {
      return (await this.describe(await this.mft.inode(entry.recordNumber))).stat.type;
    } catch (error) {
      if (error instanceof FormatError) return guess;
      throw error;
    }
  }

  private describePath(path: string, recordNumber: number): Promise<Described> {
    return this.withPath(path, async () => this.describe(await this.mft.inode(recordNumber)));
  }

  private describe(inode: NtfsInode): Promise<Described> {
    let described = this.described.get(inode);
    if (!described) {
      described = describeInode(inode);
      this.described.set(inode, described);
    }
    return described;
  }

  /** Run `action`, naming `path` in any format error it meets. */
  private async withPath<T>(path: string, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      if (error instanceof FormatError && !error.message.startsWith(`${path}: `)) {
        throw new FormatError(`${path}: ${error.message}`, { cause: error });
      }
      throw error;
    }
  }
}

async function describeInode(inode: NtfsInode): Promise<Described> {
  const info = inode.standardInformation();
  const names = inode.fileNames();
  const times = info ?? names[0];
  if (!times) throw new FormatError(`${inode.label}: file has neither $STANDARD_INFORMATION nor $FILE_NAME`);
  const fileAttributes = info?.fileAttributes ?? names[0]!.fileAttributes;
  const kind = await specialKind(inode, fileAttributes);
  let type: FileType;
  let size: number;
  let nlink = inode.record.linkCount;
  if (kind) {
    type = kind.type;
    size = kind.size ?? inode.data(AttributeType.data)?.size ?? 0;
  } else if (inode.record.isDirectory) {
    type = 'directory';
    size = inode.data(AttributeType.indexAllocation, '$I30')?.size ?? 0;
    nlink = 1;
  } else {
    type = 'file';
    size = inode.data(AttributeType.data)?.size ?? 0;
  }
  const stat: FileStat = {
    type,
    size,
    mode: kind?.mode ?? DEFAULT_MODE,
    uid: 0,
    gid: 0,
    nlink,
    mtimeMs: ntTimeToMs(times.modificationTime),
    atimeMs: ntTimeToMs(times.accessTime),
    ctimeMs: ntTimeToMs(times.mftChangeTime),
    mtimeNs: ntTimeToNs(times.modificationTime),
    atimeNs: ntTimeToNs(times.accessTime),
    ctimeNs: ntTimeToNs(times.mftChangeTime),
    inode: inode.number,
  };
  if (kind?.rdev !== undefined) stat.rdev = kind.rdev;
  return { stat, kind };
}
