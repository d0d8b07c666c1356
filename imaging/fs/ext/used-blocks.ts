// The used-block map: every group's block (or, with bigalloc, cluster) bitmap read in
// large runs, with the bitmaps of BLOCK_UNINIT groups (never written to disk) rebuilt
// from the metadata such a group holds, turned into byte ranges of the volume.
import type { BlockReader } from '../../block-reader.js';
import { type Range, type RangeCursor, RangeList } from '../../ranges.js';
import { crc32cRaw } from './checksums.js';
import { BG_BLOCK_UNINIT, MAX_READ_BYTES, type GroupDescriptors } from './group-descriptors.js';
import { groupBlockCount, groupFirstBlock, groupFixedMetadata } from './layout.js';
import type { Superblock } from './superblock.js';

/** Bitmap reads in flight at once (a non-flex_bg filesystem has one bitmap per group, far apart). */
const READ_CONCURRENCY = 8;

/** Calls `emit(start, end)` for each run of set bits among the first `bitCount` bits (LSB first). */
export function setBitRuns(bitmap: Uint8Array, bitCount: number, emit: (start: number, end: number) => void): void {
  let runStart = -1;
  const wholeBytes = bitCount >>> 3;
  for (let index = 0; index < wholeBytes; index++) {
    const byte = bitmap[index]!;
    if (byte === 0) {
      if (runStart >= 0) {
        emit(runStart, index * 8);
        runStart = -1;
      }
    } else if (byte === 0xff) {
      if (runStart < 0) runStart = index * 8;
    } else {
      for (let bit = 0; bit < 8; bit++) {
        const set = (byte >>> bit) & 1;
        if (set && runStart < 0) runStart = index * 8 + bit;
        else if (!set && runStart >= 0) {
          emit(runStart, index * 8 + bit);
          runStart = -1;
        }
      }
    }
  }
  for (let position = wholeBytes * 8; position < bitCount; position++) {
    const set = (bitmap[position >>> 3]! >>> (position & 7)) & 1;
    if (set && runStart < 0) runStart = position;
    else if (!set && runStart >= 0) {
      emit(runStart, position);
      runStart = -1;
    }
  }
  if (runStart >= 0) emit(runStart, bitCount);
}

function markBits(bitmap: Uint8Array, start: number, end: number): void {
  for (let bit = Math.max(0, start); bit < Math.min(end, bitmap.length * 8); bit++)
    bitmap[bit >>> 3]! |= 1 << (bit & 7);
}

/** Every group's bitmaps and inode table, as sorted block ranges. */
function allGroupMetadata(superblock: Superblock, groups: GroupDescriptors): RangeList {
  const ranges: Range[] = [];
  for (let group = 0; group < groups.count; group++) {
    ranges.push([groups.blockBitmap[group]!, groups.blockBitmap[group]! + 1]);
    ranges.push([groups.inodeBitmap[group]!, groups.inodeBitmap[group]! + 1]);
    ranges.push([groups.inodeTable[group]!, groups.inodeTable[group]! + superblock.inodeBlocksPerGroup]);
  }
  return RangeList.of(ranges);
}

export interface UsedBlockMapOptions {
  /** Extra copies of block bitmaps (by block number) whose set bits count as used too, e.g. from an unreplayed journal. */
  extraBitmaps?: Map<number, Buffer[]>;
  /** Notes for the user (a bitmap that fails its checksum, and so on). */
  warnings: string[];
}

/** Every on-disk block bitmap (none for BLOCK_UNINIT groups), contiguous ones (flex_bg packs them) in one read. */
async function readBitmaps(reader: BlockReader, superblock: Superblock, groups: GroupDescriptors) {
  const { blockSize } = superblock;
  const bitmapBytes = superblock.clustersPerGroup / 8;
  const wanted: { group: number; block: number }[] = [];
  for (let group = 0; group < groups.count; group++)
    if (!isBlockUninit(groups, group)) wanted.push({ group, block: groups.blockBitmap[group]! });
  wanted.sort((a, b) => a.block - b.block);
  const runs: { first: number; count: number; groups: number[] }[] = [];
  for (const { group, block } of wanted) {
    const last = runs[runs.length - 1];
    if (last && block === last.first + last.count && (last.count + 1) * blockSize <= MAX_READ_BYTES) {
      last.count++;
      last.groups.push(group);
    } else if (last && block === last.first + last.count - 1) {
      last.groups.push(group);
    } else {
      runs.push({ first: block, count: 1, groups: [group] });
    }
  }
  const bitmaps = new Array<Uint8Array | undefined>(groups.count);
  let next = 0;
  const worker = async () => {
    while (next < runs.length) {
      const run = runs[next++]!;
      const bytes = await reader.read(run.first * blockSize, run.count * blockSize);
      for (const group of run.groups) {
        const at = (groups.blockBitmap[group]! - run.first) * blockSize;
        bitmaps[group] = bytes.subarray(at, at + bitmapBytes);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, runs.length) }, worker));
  return bitmaps;
}

function isBlockUninit(groups: GroupDescriptors, group: number): boolean {
  return groups.flagsValid && (groups.flags[group]! & BG_BLOCK_UNINIT) !== 0;
}

/** The bitmap if its metadata_csum checksum holds; else, with a warning, a bitmap that keeps the whole group. */
function checkedBitmap(
  superblock: Superblock,
  groups: GroupDescriptors,
  group: number,
  bitmap: Uint8Array,
  warnings: string[],
): Uint8Array {
  const bitmapBytes = superblock.clustersPerGroup / 8;
  const computed = crc32cRaw(superblock.checksumSeed, bitmap, 0, bitmapBytes);
  const expected = groups.blockBitmapChecksum[group]!;
  const matches = groups.blockBitmapChecksumHasHigh
    ? computed === expected
    : (computed & 0xffff) === (expected & 0xffff);
  if (matches) return bitmap;
  warnings.push(
    `block bitmap of group ${group} at byte ${groups.blockBitmap[group]! * superblock.blockSize} fails its checksum: the whole group is kept`,
  );
  return new Uint8Array(bitmapBytes).fill(0xff);
}

/**
 * The bitmap of a BLOCK_UNINIT group: free except for the superblock and descriptor copies
 * and any bitmaps or inode tables (of this or, with flex_bg, other groups) placed here.
 */
function uninitBitmap(
  superblock: Superblock,
  groups: GroupDescriptors,
  group: number,
  flexMetadata: RangeCursor | null,
): Uint8Array {
  const { blockSize, clusterRatio, clustersPerGroup } = superblock;
  const bitmap = new Uint8Array(clustersPerGroup / 8);
  const groupStart = groupFirstBlock(superblock, group);
  const groupEnd = groupStart + groupBlockCount(superblock, group);
  const clusterBase = Math.floor(superblock.firstDataBlock / clusterRatio) + group * clustersPerGroup;
  const markBlocks = (start: number, end: number) =>
    markBits(bitmap, Math.floor(start / clusterRatio) - clusterBase, Math.ceil(end / clusterRatio) - clusterBase);
  const fixed = groupFixedMetadata(superblock, group);
  if (fixed.superblock !== null) markBlocks(fixed.superblock, fixed.superblock + 1);
  if (fixed.oldDescriptors)
    markBlocks(fixed.oldDescriptors.start, fixed.oldDescriptors.start + fixed.oldDescriptors.count);
  if (fixed.newDescriptor !== null) markBlocks(fixed.newDescriptor, fixed.newDescriptor + 1);
  if (group === 0 && blockSize === 1024 && clusterRatio > 1) markBlocks(0, 1);
  if (flexMetadata) {
    for (const [start, end] of flexMetadata.within(groupStart, groupEnd))
      markBlocks(groupStart + start, groupStart + end);
  } else {
    markBlocks(groups.blockBitmap[group]!, groups.blockBitmap[group]! + 1);
    markBlocks(groups.inodeBitmap[group]!, groups.inodeBitmap[group]! + 1);
    markBlocks(groups.inodeTable[group]!, groups.inodeTable[group]! + superblock.inodeBlocksPerGroup);
  }
  return bitmap;
}

/** The bitmap with the bits of every extra copy (journal) set too. */
function withExtraCopies(bitmap: Uint8Array, copies: Buffer[] | undefined, bitmapBytes: number): Uint8Array {
  if (!copies) return bitmap;
  const merged = Uint8Array.from(bitmap.subarray(0, bitmapBytes));
  for (const copy of copies) for (let index = 0; index < bitmapBytes; index++) merged[index]! |= copy[index] ?? 0;
  return merged;
}

/** Byte ranges of the volume in use by the filesystem: data, metadata and the boot block. */
export async function usedByteRanges(
  reader: BlockReader,
  superblock: Superblock,
  groups: GroupDescriptors,
  options: UsedBlockMapOptions,
): Promise<RangeList> {
  const { blockSize, clusterRatio, clusterSize, clustersPerGroup } = superblock;
  const totalBytes = superblock.blocksCount * blockSize;
  const bitmapBytes = clustersPerGroup / 8;
  const bitmaps = await readBitmaps(reader, superblock, groups);
  const metadata = superblock.has.flexBg ? allGroupMetadata(superblock, groups).cursor() : null;
  const ranges: [number, number][] = [];
  const pushBytes = (start: number, end: number) => {
    const clipped = Math.min(end, totalBytes);
    if (clipped <= start) return;
    const last = ranges[ranges.length - 1];
    if (last && last[1] >= start) last[1] = Math.max(last[1], clipped);
    else ranges.push([start, clipped]);
  };
  // The boot block before the first group (1 KiB blocks) is not in any bitmap but is no free space either.
  pushBytes(0, superblock.firstDataBlock * blockSize);

  const firstCluster = Math.floor(superblock.firstDataBlock / clusterRatio);
  for (let group = 0; group < groups.count; group++) {
    const groupEnd = groupFirstBlock(superblock, group) + groupBlockCount(superblock, group);
    const clusterBase = firstCluster + group * clustersPerGroup;
    const clustersInGroup = Math.min(clustersPerGroup, Math.ceil(groupEnd / clusterRatio) - clusterBase);
    const onDisk = bitmaps[group];
    let bitmap: Uint8Array;
    if (!onDisk) bitmap = uninitBitmap(superblock, groups, group, metadata);
    else if (superblock.has.metadataCsum) bitmap = checkedBitmap(superblock, groups, group, onDisk, options.warnings);
    else bitmap = onDisk;
    bitmap = withExtraCopies(bitmap, options.extraBitmaps?.get(groups.blockBitmap[group]!), bitmapBytes);
    setBitRuns(bitmap, clustersInGroup, (start, end) =>
      pushBytes((clusterBase + start) * clusterSize, (clusterBase + end) * clusterSize),
    );
  }
  return RangeList.of(ranges);
}
