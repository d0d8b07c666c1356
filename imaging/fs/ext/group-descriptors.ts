// The block group descriptor table: read in large runs (one run without meta_bg, one
// block per meta group with it), checked (checksums, bitmap and inode table locations)
// and kept as flat arrays indexed by group.
import { FormatError } from '../../../src/core/errors.js';
import type { BlockReader } from '../../block-reader.js';
import { crc16, crc32cRaw, crc32cU32, crc32cZeros } from './checksums.js';
import {
  descriptorBlockLocation,
  groupBlockCount,
  groupFirstBlock,
  oldStyleDescriptorBlocks,
  primarySuperblockBlock,
} from './layout.js';
import type { Superblock } from './superblock.js';

export const BG_INODE_UNINIT = 0x0001;
export const BG_BLOCK_UNINIT = 0x0002;

/** Reads of metadata are grouped into runs of at most this many bytes. */
export const MAX_READ_BYTES = 8 << 20;

export interface GroupDescriptors {
  count: number;
  blockBitmap: Float64Array;
  inodeBitmap: Float64Array;
  inodeTable: Float64Array;
  flags: Uint16Array;
  itableUnused: Float64Array;
  blockBitmapChecksum: Uint32Array;
  /** Whether the checksum above has its high 16 bits (descriptors of 64 bytes and more). */
  blockBitmapChecksumHasHigh: boolean;
  /** Byte offset of each descriptor in the volume, for error messages. */
  offset: Float64Array;
  /** Whether the group flags (BLOCK_UNINIT, INODE_UNINIT, itable_unused) are to be trusted. */
  flagsValid: boolean;
}

/** Read blocks [first, first + count) in runs of at most MAX_READ_BYTES. */
async function readBlocks(reader: BlockReader, blockSize: number, first: number, count: number): Promise<Buffer> {
  const total = count * blockSize;
  if (total <= MAX_READ_BYTES) return reader.read(first * blockSize, total);
  const parts: Buffer[] = [];
  for (let done = 0; done < total; done += MAX_READ_BYTES)
    parts.push(await reader.read(first * blockSize + done, Math.min(MAX_READ_BYTES, total - done)));
  return Buffer.concat(parts);
}

function descriptorChecksum(superblock: Superblock, group: number, bytes: Buffer): number {
  const checksumOffset = 0x1e;
  if (superblock.has.metadataCsum) {
    let crc = crc32cU32(superblock.checksumSeed, group);
    crc = crc32cRaw(crc, bytes, 0, checksumOffset);
    crc = crc32cZeros(crc, 2);
    crc = crc32cRaw(crc, bytes, checksumOffset + 2, bytes.length);
    return crc & 0xffff;
  }
  const groupBytes = Buffer.allocUnsafe(4);
  groupBytes.writeUInt32LE(group, 0);
  let crc = crc16(0xffff, superblock.uuid);
  crc = crc16(crc, groupBytes);
  crc = crc16(crc, bytes, 0, checksumOffset);
  if (bytes.length > checksumOffset + 2) crc = crc16(crc, bytes, checksumOffset + 2, bytes.length);
  return crc;
}

/** Every descriptor block, found where meta_bg or the old layout puts it, contiguous ones read at once. */
async function readDescriptorBlocks(reader: BlockReader, superblock: Superblock) {
  const { blockSize, descriptorBlocks } = superblock;
  const locations: number[] = [];
  for (let index = 0; index < descriptorBlocks; index++) locations.push(descriptorBlockLocation(superblock, index));
  const blocks: Buffer[] = new Array<Buffer>(descriptorBlocks);
  for (let index = 0; index < descriptorBlocks; ) {
    let run = 1;
    while (
      index + run < descriptorBlocks &&
      locations[index + run] === locations[index]! + run &&
      (run + 1) * blockSize <= MAX_READ_BYTES
    )
      run++;
    const first = locations[index]!;
    if (first + run > superblock.blocksCount) {
      throw new FormatError(
        `${reader.description}: group descriptor block ${index} would be at block ${first}, beyond the ${superblock.blocksCount}-block filesystem`,
      );
    }
    const bytes = await readBlocks(reader, blockSize, first, run);
    for (let k = 0; k < run; k++) blocks[index + k] = bytes.subarray(k * blockSize, (k + 1) * blockSize);
    index += run;
  }
  return { locations, blocks };
}

function emptyDescriptors(superblock: Superblock): GroupDescriptors {
  const { groupCount } = superblock;
  return {
    count: groupCount,
    blockBitmap: new Float64Array(groupCount),
    inodeBitmap: new Float64Array(groupCount),
    inodeTable: new Float64Array(groupCount),
    flags: new Uint16Array(groupCount),
    itableUnused: new Float64Array(groupCount),
    blockBitmapChecksum: new Uint32Array(groupCount),
    blockBitmapChecksumHasHigh: superblock.descSize >= 0x3a,
    offset: new Float64Array(groupCount),
    flagsValid: superblock.has.gdtCsum || superblock.has.metadataCsum,
  };
}

/** One descriptor's bytes with its group, its place in the volume and the error that names both. */
class Descriptor {
  constructor(
    readonly group: number,
    readonly bytes: Buffer,
    readonly offset: number,
    private readonly where: string,
  ) {}

  readonly fail = (problem: string): never => {
    throw new FormatError(`${this.where}: group descriptor ${this.group} at byte ${this.offset}: ${problem}`);
  };

  u16(at: number): number {
    return this.bytes.readUInt16LE(at);
  }

  /** A field whose high half sits at `high` in descriptors of 64 bytes and more. */
  u64(low: number, high: number): number {
    const wide = this.bytes.length >= 64;
    return this.bytes.readUInt32LE(low) + (wide ? this.bytes.readUInt32LE(high) * 0x1_0000_0000 : 0);
  }
}

/** Copy one descriptor's fields into the arrays, its checksum checked first when the flags are trusted. */
function storeDescriptor(result: GroupDescriptors, superblock: Superblock, descriptor: Descriptor): void {
  const { group } = descriptor;
  const checked = result.flagsValid;
  if (checked) {
    const stored = descriptor.u16(0x1e);
    const computed = descriptorChecksum(superblock, group, descriptor.bytes);
    if (stored !== computed)
      descriptor.fail(
        `checksum 0x${stored.toString(16).padStart(4, '0')} does not match the contents (0x${computed.toString(16).padStart(4, '0')})`,
      );
  }
  const wide = descriptor.bytes.length >= 64;
  result.offset[group] = descriptor.offset;
  result.blockBitmap[group] = descriptor.u64(0x00, 0x20);
  result.inodeBitmap[group] = descriptor.u64(0x04, 0x24);
  result.inodeTable[group] = descriptor.u64(0x08, 0x28);
  result.flags[group] = checked ? descriptor.u16(0x12) : 0;
  result.itableUnused[group] = checked ? descriptor.u16(0x1c) + (wide ? descriptor.u16(0x32) * 0x10000 : 0) : 0;
  result.blockBitmapChecksum[group] =
    descriptor.u16(0x18) | (result.blockBitmapChecksumHasHigh ? descriptor.u16(0x38) << 16 : 0);
}

/** Refuse bitmaps and inode tables outside where the group may keep them, and impossible counts. */
function checkPlacement(result: GroupDescriptors, superblock: Superblock, descriptor: Descriptor, primaryEnd: number) {
  const { group, fail } = descriptor;
  const blockBitmap = result.blockBitmap[group]!;
  const inodeBitmap = result.inodeBitmap[group]!;
  const inodeTable = result.inodeTable[group]!;
  const inodeTableBlocks = superblock.inodeBlocksPerGroup;
  // Without flex_bg a group's bitmaps and table live inside it; with it, anywhere.
  const lowest = superblock.has.flexBg ? primaryEnd : Math.max(primaryEnd, groupFirstBlock(superblock, group));
  const limit = superblock.has.flexBg
    ? superblock.blocksCount
    : groupFirstBlock(superblock, group) + groupBlockCount(superblock, group);
  const range = superblock.has.flexBg
    ? `blocks ${lowest}-${limit - 1} of the filesystem`
    : `blocks ${lowest}-${limit - 1} of the group`;
  if (blockBitmap < lowest || blockBitmap >= limit) fail(`block bitmap at block ${blockBitmap} is outside ${range}`);
  if (inodeBitmap < lowest || inodeBitmap >= limit) fail(`inode bitmap at block ${inodeBitmap} is outside ${range}`);
  if (inodeTable < lowest || inodeTable + inodeTableBlocks > limit)
    fail(`inode table at blocks ${inodeTable}-${inodeTable + inodeTableBlocks - 1} is outside ${range}`);
  if (result.itableUnused[group]! > superblock.inodesPerGroup)
    fail(`${result.itableUnused[group]} unused inodes is more than the ${superblock.inodesPerGroup} of a group`);
}

export async function readGroupDescriptors(reader: BlockReader, superblock: Superblock): Promise<GroupDescriptors> {
  const { blockSize, descSize, groupCount, descriptorsPerBlock } = superblock;
  const { locations, blocks } = await readDescriptorBlocks(reader, superblock);
  const result = emptyDescriptors(superblock);
  // Metadata must not overlap the primary superblock and descriptor table.
  const followingSuperblock =
    superblock.has.metaBg && superblock.firstMetaBg === 0 ? 1 : oldStyleDescriptorBlocks(superblock);
  const primaryEnd = primarySuperblockBlock(superblock) + 1 + followingSuperblock;
  for (let group = 0; group < groupCount; group++) {
    const blockIndex = Math.floor(group / descriptorsPerBlock);
    const within = (group % descriptorsPerBlock) * descSize;
    const bytes = blocks[blockIndex]!.subarray(within, within + descSize);
    const descriptor = new Descriptor(group, bytes, locations[blockIndex]! * blockSize + within, reader.description);
    storeDescriptor(result, superblock, descriptor);
    checkPlacement(result, superblock, descriptor, primaryEnd);
  }
  return result;
}
