// The one interface every filesystem module implements (partclone's model): read the
// superblock, produce the map of used blocks, and give read-only access to files.
// Modules: ext.ts (ext2/3/4), fat.ts (FAT12/16/32), ntfs.ts, swap.ts.
import type { CaptureMethod, FilesystemInfo } from '../../src/format/manifest.js';
import type { RangeList } from '../ranges.js';
import type { CaptureMap } from './used-map-check.js';
import type { BlockReader } from '../block-reader.js';

export type { BlockReader, CaptureMap };

export interface FilesystemModule {
  /** Short name of the module: 'ext', 'fat', 'ntfs', 'swap'. */
  readonly name: string;
  /** A cheap look at magic numbers: should open() be tried on this volume? */
  detect(reader: BlockReader): Promise<boolean>;
  /**
   * Parse and check the superblock and whatever the used-block map needs. A damaged
   * filesystem throws FormatError naming what is wrong and where (byte offset), and
   * the capture falls back to raw with that message as a warning.
   */
  open(reader: BlockReader): Promise<OpenFilesystem>;
}

export interface OpenFilesystem {
  /** What the manifest records: type (ext2/ext3/ext4/vfat/ntfs/swap), UUID, label, sizes. */
  readonly info: FilesystemInfo;
  /** 'used-blocks' for filesystems; 'swap-header-only' for swap. */
  readonly method: CaptureMethod;
  /** Things the user should know (bigalloc handled conservatively, dirty journal...). */
  readonly warnings: string[];
  /** Byte ranges, relative to the volume start, that hold data or metadata, as the filesystem's own map says. */
  usedRanges(): Promise<RangeList>;
  /**
   * What capture reads: the used-block map cross-checked against the metadata and file
   * references the module parses (used-map-check.ts). Metadata marked free makes it
   * 'raw' (every block); referenced blocks marked free are added. Warnings say which.
   */
  captureMap(): Promise<CaptureMap>;
  /** Read-only access to the files, where the module supports it. */
  files?(): Promise<FileTree>;
}

export type FileType = 'file' | 'directory' | 'symlink' | 'block-device' | 'char-device' | 'fifo' | 'socket';

export interface FileStat {
  type: FileType;
  size: number;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtimeMs: number;
  atimeMs: number;
  ctimeMs: number;
  /** The same times in nanoseconds, where the filesystem keeps them that finely. */
  mtimeNs?: bigint;
  atimeNs?: bigint;
  ctimeNs?: bigint;
  /** Stable within the filesystem; equal for hard links. */
  inode: number;
  /** Device number for block and character devices. */
  rdev?: number;
}

export interface DirEntry {
  name: string;
  type: FileType;
  inode: number;
}

export interface FileNode {
  /** Absolute path as looked up, '/'-separated. */
  path: string;
  inode: number;
  stat: FileStat;
}

export interface FileTree {
  /** Resolve an absolute path without following a final symlink (lstat). NotFoundError names the path. */
  lookup(path: string): Promise<FileNode>;
  /** Entries of a directory, without '.' and '..'. */
  readdir(node: FileNode): Promise<DirEntry[]>;
  /** Up to `length` bytes from `offset`; shorter only at end of file. Holes read as zeros. */
  read(node: FileNode, offset: number, length: number): Promise<Buffer>;
  readlink(node: FileNode): Promise<string>;
  /** Extended attributes by full name ('user.x', 'security.selinux', 'system.posix_acl_access' in Linux xattr format). */
  xattrs(node: FileNode): Promise<Map<string, Buffer>>;
  /** Byte ranges of a sparse file that hold data, when the filesystem knows. */
  dataRanges?(node: FileNode): Promise<RangeList>;
}
