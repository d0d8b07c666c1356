// Directory entries: read linearly from every directory block (which also covers htree
// directories, whose index blocks look like empty entries) or from an inline directory,
// each entry checked the way the kernel's ext4_check_dir_entry checks it.
import { FormatError } from '../../../src/core/errors.js';
import type { FileType } from '../filesystem.js';
import { crc32cRaw } from './checksums.js';
import { InodeFlag, type Inode } from './inode.js';
import type { Superblock } from './superblock.js';

export interface RawDirEntry {
  name: string;
  inode: number;
  /** From the entry's file type byte; null when the filesystem does not record it. */
  type: FileType | null;
}

const TYPE_BY_CODE: Record<number, FileType> = {
  1: 'file',
  2: 'directory',
  3: 'char-device',
  4: 'block-device',
  5: 'fifo',
  6: 'socket',
  7: 'symlink',
};

const ENTRY_HEADER_SIZE = 8;
const TAIL_SIZE = 12;
const TAIL_FILE_TYPE = 0xde;
const nameDecoder = new TextDecoder('utf-8');

function recordLength(raw: number, blockSize: number): number {
  if (blockSize < 65536) return raw;
  if (raw === 65535 || raw === 0) return blockSize;
  return (raw & 65532) | ((raw & 3) << 16);
}

/**
 * Entries of one region of directory entries (a directory block, or a part of an
 * inline directory), '.' and '..' included. `where` names the region for errors.
 */
export function parseEntries(
  bytes: Buffer,
  start: number,
  end: number,
  superblock: Superblock,
  where: string,
  blockSize: number,
): RawDirEntry[] {
  const entries: RawDirEntry[] = [];
  for (let at = start; at < end; ) {
    const fail = (problem: string): never => {
      throw new FormatError(`${where}: entry at offset ${at - start}: ${problem}`);
    };
    if (at + ENTRY_HEADER_SIZE > end) fail('truncated entry header');
    const inode = bytes.readUInt32LE(at);
    const length = recordLength(bytes.readUInt16LE(at + 4), blockSize);
    const nameLength = superblock.has.filetype ? bytes.readUInt8(at + 6) : bytes.readUInt16LE(at + 6);
    const typeCode = superblock.has.filetype ? bytes.readUInt8(at + 7) & 0x0f : 0;
    if (length < 12) fail(`record length ${length} is too small`);
    if (length % 4 !== 0) fail(`record length ${length} is not a multiple of 4`);
    if (at + length > end) fail(`record length ${length} runs past the end of the block`);
    if (ENTRY_HEADER_SIZE + nameLength > length)
      fail(`name of ${nameLength} bytes does not fit a ${length}-byte record`);
    if (inode !== 0) {
      if (inode > superblock.inodesCount) fail(`inode number ${inode} is outside 1-${superblock.inodesCount}`);
      if (nameLength === 0) fail('empty name');
      const nameBytes = bytes.subarray(at + ENTRY_HEADER_SIZE, at + ENTRY_HEADER_SIZE + nameLength);
      if (nameBytes.includes(0x2f) || nameBytes.includes(0)) fail('name contains "/" or NUL');
      entries.push({ name: nameDecoder.decode(nameBytes), inode, type: TYPE_BY_CODE[typeCode] ?? null });
    }
    at += length;
  }
  return entries;
}

/**
 * Entries of directory block `logical` of `directory` (read from volume block
 * `physical`), after checking its metadata_csum tail where it has one.
 */
export function parseDirectoryBlock(
  block: Buffer,
  directory: Inode,
  logical: number,
  physical: number,
  superblock: Superblock,
): RawDirEntry[] {
  const { blockSize } = superblock;
  const where = `directory block ${logical} (block ${physical} at byte ${physical * blockSize})`;
  let end = blockSize;
  if (superblock.has.metadataCsum && !isIndexBlock(block, directory, logical, blockSize)) {
    const tail = blockSize - TAIL_SIZE;
    const hasTail =
      block.readUInt32LE(tail) === 0 &&
      block.readUInt16LE(tail + 4) === TAIL_SIZE &&
      block.readUInt8(tail + 6) === 0 &&
      block.readUInt8(tail + 7) === TAIL_FILE_TYPE;
    if (!hasTail) throw new FormatError(`${where}: has no checksum tail`);
    const stored = block.readUInt32LE(tail + 8);
    const computed = crc32cRaw(directory.checksumSeed, block, 0, tail);
    if (stored !== computed)
      throw new FormatError(
        `${where}: checksum 0x${stored.toString(16)} does not match the contents (0x${computed.toString(16)})`,
      );
    end = tail;
  }
  return parseEntries(block, 0, end, superblock, where, blockSize);
}

/** htree index blocks (the root, and interior nodes that pose as one empty entry) carry no leaf checksum tail. */
function isIndexBlock(block: Buffer, directory: Inode, logical: number, blockSize: number): boolean {
  const indexed = (directory.flags & InodeFlag.index) !== 0;
  if (!indexed) return false;
  if (logical === 0) return true;
  return block.readUInt32LE(0) === 0 && recordLength(block.readUInt16LE(4), blockSize) === blockSize;
}
