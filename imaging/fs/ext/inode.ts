// Inodes: located through the group descriptors, read from the inode table in 64 KiB
// pieces kept in a bounded cache, checked (metadata_csum, extra size, file type) and
// parsed into typed fields (64-bit sizes, 32-bit ids, nanosecond times).
import { FormatError } from '../../../src/core/errors.js';
import type { FileType } from '../filesystem.js';
import { LruCache, PromiseCache } from './cache.js';
import { crc32cRaw, crc32cU32, crc32cZeros } from './checksums.js';
import { BG_INODE_UNINIT } from './group-descriptors.js';
import { OS_LINUX, type Superblock } from './superblock.js';
import type { ExtVolume } from './volume.js';

export const ROOT_INODE = 2;
export const INLINE_AREA_SIZE = 60;

export const InodeFlag = {
  /** A hashed (htree) directory. */
  index: 0x1000,
  encrypted: 0x800,
  /** i_blocks counts filesystem blocks, not 512-byte sectors. */
  hugeFile: 0x40000,
  extents: 0x80000,
  /** This inode holds the value of an extended attribute (ea_inode). */
  eaInode: 0x200000,
  inlineData: 0x10000000,
} as const;

const TYPE_BY_MODE: Record<number, FileType> = {
  4096: 'fifo',
  8192: 'char-device',
  16384: 'directory',
  24576: 'block-device',
  32768: 'file',
  40960: 'symlink',
  49152: 'socket',
};

export interface Timestamp {
  seconds: number;
  nanoseconds: number;
}

export interface Inode {
  number: number;
  /** Byte offset of the inode in the volume, for error messages. */
  offset: number;
  mode: number;
  type: FileType;
  uid: number;
  gid: number;
  size: number;
  linksCount: number;
  flags: number;
  generation: number;
  /** i_blocks in 512-byte units (huge_file inodes count filesystem blocks: converted). */
  sectors: number;
  /** Block of the external extended attribute block, 0 if none. */
  xattrBlock: number;
  /** The 60-byte i_block area: block map, extent root, inline data or fast symlink. */
  blockArea: Buffer;
  atime: Timestamp;
  ctime: Timestamp;
  mtime: Timestamp;
  extraIsize: number;
  /** The whole on-disk inode (in-inode extended attributes live after the extra fields). */
  raw: Buffer;
  /** Seed of the checksums of this inode's directory, extent and xattr-inode blocks. */
  checksumSeed: number;
}

/** Inode-table bytes are read in pieces of this size (whole inodes: inode sizes are powers of two). */
const TABLE_PIECE_BYTES = 64 * 1024;

export class InodeTable {
  private readonly pieces = new LruCache<number, Promise<Buffer>>(256);
  private readonly inodes = new PromiseCache<number, Inode>(8192);

  constructor(private readonly volume: ExtVolume) {}

  /** Where inode `number` lives: its byte offset, after checking that it can exist. */
  locate(number: number): { offset: number; group: number; index: number } {
    const { superblock, groups } = this.volume;
    if (!Number.isSafeInteger(number) || number < 1 || number > superblock.inodesCount) {
      throw new FormatError(`inode number ${number} is outside 1-${superblock.inodesCount}`);
    }
    const group = Math.floor((number - 1) / superblock.inodesPerGroup);
    const index = (number - 1) % superblock.inodesPerGroup;
    if (groups.flagsValid && number >= superblock.firstInode) {
      const initialized = (groups.flags[group]! & BG_INODE_UNINIT) === 0;
      const used = superblock.inodesPerGroup - groups.itableUnused[group]!;
      if (!initialized || index >= used)
        throw new FormatError(`inode ${number} lies in the never-used part of group ${group}'s inode table`);
    }
    return { offset: groups.inodeTable[group]! * superblock.blockSize + index * superblock.inodeSize, group, index };
  }

  read(number: number): Promise<Inode> {
    return this.inodes.get(number, () => this.load(number));
  }

  private async load(number: number): Promise<Inode> {
    const { superblock, groups } = this.volume;
    const { offset, group, index } = this.locate(number);
    const tableStart = groups.inodeTable[group]! * superblock.blockSize;
    const tableBytes = superblock.inodesPerGroup * superblock.inodeSize;
    const within = index * superblock.inodeSize;
    const pieceStart = Math.floor(within / TABLE_PIECE_BYTES) * TABLE_PIECE_BYTES;
    const key = tableStart + pieceStart;
    let piece = this.pieces.get(key);
    if (!piece) {
      piece = this.volume.reader.read(key, Math.min(TABLE_PIECE_BYTES, tableBytes - pieceStart));
      this.pieces.set(key, piece);
      piece.catch(() => this.pieces.delete(key));
    }
    const bytes = (await piece).subarray(within - pieceStart, within - pieceStart + superblock.inodeSize);
    return parseInode(this.volume, number, offset, Buffer.from(bytes));
  }
}

type Fail = (problem: string) => never;

/** Bytes beyond the first 128 that this inode uses (i_extra_isize), checked against the inode size. */
function extraInodeSize(superblock: Superblock, raw: Buffer, fail: Fail): number {
  if (superblock.inodeSize <= 128) return 0;
  const extraIsize = raw.readUInt16LE(0x80);
  if (128 + extraIsize > superblock.inodeSize || extraIsize % 4 !== 0)
    fail(`extra size ${extraIsize} does not fit a ${superblock.inodeSize}-byte inode`);
  return extraIsize;
}

/** Check the metadata_csum checksum, which covers the whole inode with its own two fields taken as zero. */
function checkInodeChecksum(raw: Buffer, checksumSeed: number, extraIsize: number, fail: Fail): void {
  const hasHigh = extraIsize >= 4;
  let computed = crc32cRaw(checksumSeed, raw, 0, 0x7c);
  computed = crc32cZeros(computed, 2);
  if (hasHigh) {
    computed = crc32cRaw(computed, raw, 0x7e, 0x82);
    computed = crc32cZeros(computed, 2);
    computed = crc32cRaw(computed, raw, 0x84, raw.length);
  } else {
    computed = crc32cRaw(computed, raw, 0x7e, raw.length);
  }
  const stored = raw.readUInt16LE(0x7c) + (hasHigh ? raw.readUInt16LE(0x82) * 0x10000 : 0);
  const matches = hasHigh ? computed === stored : (computed & 0xffff) === stored;
  if (!matches)
    fail(
      `checksum 0x${stored.toString(16)} does not match the contents (0x${(hasHigh ? computed : computed & 0xffff).toString(16)})`,
    );
}

/** The file size; the high half counts only for regular files and, with large_dir, directories. */
function fileSize(superblock: Superblock, raw: Buffer, type: FileType, fail: Fail): number {
  const sizeHigh = raw.readUInt32LE(0x6c);
  const sizeLow = raw.readUInt32LE(0x04);
  if (type !== 'file' && !superblock.has.largeDir) return sizeLow;
  if (sizeHigh >= 0x200000) fail(`size ${sizeHigh} * 2^32 + ${sizeLow} is beyond what can be addressed`);
  return sizeLow + sizeHigh * 0x1_0000_0000;
}

/** A timestamp: seconds, extended by the extra field (epoch bits and nanoseconds) when the inode has it. */
function inodeTime(raw: Buffer, extraIsize: number, secondsAt: number, extraAt: number): Timestamp {
  let seconds = raw.readInt32LE(secondsAt);
  let nanoseconds = 0;
  if (extraAt + 4 <= 128 + extraIsize) {
    const extra = raw.readUInt32LE(extraAt);
    seconds += (extra & 3) * 0x1_0000_0000;
    nanoseconds = extra >>> 2;
  }
  return { seconds, nanoseconds };
}

export function parseInode(volume: ExtVolume, number: number, offset: number, raw: Buffer): Inode {
  const { superblock } = volume;
  const fail: Fail = (problem) => {
    throw new FormatError(`inode ${number} at byte ${offset}: ${problem}`);
  };
  const u16 = (at: number) => raw.readUInt16LE(at);
  const u32 = (at: number) => raw.readUInt32LE(at);
  const linux = superblock.creatorOs === OS_LINUX;
  const extraIsize = extraInodeSize(superblock, raw, fail);
  const generation = u32(0x64);
  const checksumSeed = superblock.has.metadataCsum
    ? crc32cU32(crc32cU32(superblock.checksumSeed, number), generation)
    : 0;
  if (superblock.has.metadataCsum && linux) checkInodeChecksum(raw, checksumSeed, extraIsize, fail);

  const mode = u16(0x00);
  const type = TYPE_BY_MODE[mode & 0xf000] ?? fail(`mode 0o${mode.toString(8)} is no known file type`);
  const linksCount = u16(0x1a);
  if (linksCount === 0) fail('is not in use (its link count is 0)');
  const flags = u32(0x20);
  const size = fileSize(superblock, raw, type, fail);
  let sectors = u32(0x1c) + (superblock.has.hugeFile && linux ? u16(0x74) * 0x1_0000_0000 : 0);
  if (superblock.has.hugeFile && flags & InodeFlag.hugeFile) sectors *= superblock.blockSize / 512;
  return {
    number,
    offset,
    mode,
    type,
    uid: u16(0x02) + u16(0x78) * 0x10000,
    gid: u16(0x18) + u16(0x7a) * 0x10000,
    size,
    linksCount,
    flags,
    generation,
    sectors,
    xattrBlock: u32(0x68) + (linux ? u16(0x76) * 0x1_0000_0000 : 0),
    blockArea: raw.subarray(0x28, 0x28 + INLINE_AREA_SIZE),
    atime: inodeTime(raw, extraIsize, 0x08, 0x8c),
    ctime: inodeTime(raw, extraIsize, 0x0c, 0x84),
    mtime: inodeTime(raw, extraIsize, 0x10, 0x88),
    extraIsize,
    raw,
    checksumSeed,
  };
}

/** A symlink whose target is kept in the inode's block area, not in blocks. */
export function isFastSymlink(inode: Inode, superblock: Superblock): boolean {
  if (inode.type !== 'symlink' || inode.flags & InodeFlag.inlineData) return false;
  if (inode.flags & InodeFlag.eaInode) return inode.size > 0 && inode.size < INLINE_AREA_SIZE;
  const xattrSectors = inode.xattrBlock ? superblock.clusterSize / 512 : 0;
  return inode.sectors - xattrSectors === 0;
}

/** Whether the block area holds a block map (extent tree or block pointers) rather than inline data, a symlink target or a device number. */
export function hasBlockMap(inode: Inode, superblock: Superblock): boolean {
  if (inode.flags & InodeFlag.inlineData) return false;
  if (inode.type === 'symlink') return !isFastSymlink(inode, superblock);
  return inode.type === 'file' || inode.type === 'directory';
}
