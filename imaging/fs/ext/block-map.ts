// Where a file's blocks are: the extent tree of ext4 (any depth, uninitialized extents
// kept apart so they read as zeros) or the direct/indirect block map of ext2/3 (up to
// triple indirect). Both become one sorted list of runs; anything not in it is a hole.
import { FormatError } from '../../../src/core/errors.js';
import { crc32cRaw } from './checksums.js';
import { InodeFlag, type Inode } from './inode.js';
import { checkBlockRange, readBlock, type ExtVolume } from './volume.js';

export interface FileExtent {
  /** First file block. */
  logical: number;
  /** First volume block. */
  physical: number;
  length: number;
  /** False for preallocated (unwritten) extents, which read as zeros. */
  initialized: boolean;
}

const EXTENT_MAGIC = 0xf30a;
const EXTENT_HEADER_SIZE = 12;
const EXTENT_ENTRY_SIZE = 12;
const MAX_EXTENT_DEPTH = 5;
const INITIALIZED_MAX_LENGTH = 32768;
const DIRECT_BLOCKS = 12;

/** Append a run, merging it with the previous one when both continue each other. */
function appendRun(runs: FileExtent[], run: FileExtent): void {
  const last = runs[runs.length - 1];
  if (
    last &&
    last.initialized === run.initialized &&
    last.logical + last.length === run.logical &&
    last.physical + last.length === run.physical
  )
    last.length += run.length;
  else runs.push(run);
}

/** Called with each block of the map itself (extent tree nodes, indirect blocks) as it is read. */
export type MapBlockVisitor = (block: number) => void;

export async function fileBlockMap(
  volume: ExtVolume,
  inode: Inode,
  onMapBlock?: MapBlockVisitor,
): Promise<FileExtent[]> {
  return inode.flags & InodeFlag.extents
    ? extentTreeMap(volume, inode, onMapBlock)
    : indirectMap(volume, inode, onMapBlock);
}

async function extentTreeMap(volume: ExtVolume, inode: Inode, onMapBlock?: MapBlockVisitor): Promise<FileExtent[]> {
  const { blockSize } = volume.superblock;
  const runs: FileExtent[] = [];
  // A corrupt tree could name one block many times over; every node is visited once.
  const visited = new Set<number>();

  const walk = async (
    node: Buffer,
    where: string,
    expectedDepth: number | null,
    isRoot: boolean,
    lowest: number,
  ): Promise<void> => {
    const fail = (problem: string): never => {
      throw new FormatError(`${where}: ${problem}`);
    };
    const magic = node.readUInt16LE(0);
    if (magic !== EXTENT_MAGIC) fail(`bad extent header magic 0x${magic.toString(16)}`);
    const entries = node.readUInt16LE(2);
    const max = node.readUInt16LE(4);
    const depth = node.readUInt16LE(6);
    const room = Math.floor((node.length - EXTENT_HEADER_SIZE) / EXTENT_ENTRY_SIZE);
    if (max > room || entries > max) fail(`extent header claims ${entries} of ${max} entries where ${room} fit`);
    if (depth > MAX_EXTENT_DEPTH || (expectedDepth !== null && depth !== expectedDepth))
      fail(`extent tree depth ${depth} is impossible here`);
    if (!isRoot && volume.superblock.has.metadataCsum) {
      const tail = EXTENT_HEADER_SIZE + max * EXTENT_ENTRY_SIZE;
      if (tail + 4 > node.length) fail('extent block has no room for its checksum');
      const stored = node.readUInt32LE(tail);
      const computed = crc32cRaw(inode.checksumSeed, node, 0, tail);
      if (stored !== computed)
        fail(`extent block checksum 0x${stored.toString(16)} does not match the contents (0x${computed.toString(16)})`);
    }
    let previousEnd = lowest;
    if (depth === 0) {
      for (let index = 0; index < entries; index++) {
        const at = EXTENT_HEADER_SIZE + index * EXTENT_ENTRY_SIZE;
        const logical = node.readUInt32LE(at);
        const rawLength = node.readUInt16LE(at + 4);
        const physical = node.readUInt16LE(at + 6) * 0x1_0000_0000 + node.readUInt32LE(at + 8);
        const initialized = rawLength <= INITIALIZED_MAX_LENGTH;
        const length = initialized ? rawLength : rawLength - INITIALIZED_MAX_LENGTH;
        if (length === 0) fail(`extent ${index} has length 0`);
        if (logical < previousEnd)
          fail(`extent ${index} (file block ${logical}) overlaps or precedes the one before it`);
        checkBlockRange(volume, physical, length, `${where}: extent ${index}`);
        appendRun(runs, { logical, physical, length, initialized });
        previousEnd = logical + length;
      }
      return;
    }
    const children: { logical: number; block: number }[] = [];
    for (let index = 0; index < entries; index++) {
      const at = EXTENT_HEADER_SIZE + index * EXTENT_ENTRY_SIZE;
      const logical = node.readUInt32LE(at);
      const block = node.readUInt16LE(at + 8) * 0x1_0000_0000 + node.readUInt32LE(at + 4);
      if (index > 0 && logical <= children[index - 1]!.logical)
        fail(`extent index ${index} (file block ${logical}) is out of order`);
      checkBlockRange(volume, block, 1, `${where}: extent index ${index}`);
      if (visited.has(block)) fail(`extent tree block ${block} is referenced twice`);
      visited.add(block);
      onMapBlock?.(block);
      children.push({ logical, block });
    }
    // Children are read together, then walked in order so runs stay sorted.
    const blocks = await Promise.all(
      children.map(({ block }) => readBlock(volume, block, `${where}: extent tree block`)),
    );
    for (let index = 0; index < children.length; index++) {
      const childWhere = `extent tree block ${children[index]!.block} at byte ${children[index]!.block * blockSize}`;
      await walk(blocks[index]!, childWhere, depth - 1, false, Math.max(previousEnd, children[index]!.logical));
      previousEnd = runs.length ? runs[runs.length - 1]!.logical + runs[runs.length - 1]!.length : previousEnd;
    }
  };

  await walk(inode.blockArea, `inode ${inode.number} at byte ${inode.offset}: extent tree root`, null, true, 0);
  return runs;
}

async function indirectMap(volume: ExtVolume, inode: Inode, onMapBlock?: MapBlockVisitor): Promise<FileExtent[]> {
  const { blockSize } = volume.superblock;
  const perBlock = blockSize / 4;
  const fileBlocks = Math.ceil(inode.size / blockSize);
  const runs: FileExtent[] = [];
  const where = `inode ${inode.number} at byte ${inode.offset}`;

  const addData = (logical: number, physical: number) => {
    checkBlockRange(volume, physical, 1, `${where}: file block ${logical}`);
    appendRun(runs, { logical, physical, length: 1, initialized: true });
  };
  for (let index = 0; index < DIRECT_BLOCKS && index < fileBlocks; index++) {
    const physical = inode.blockArea.readUInt32LE(index * 4);
    if (physical !== 0) addData(index, physical);
  }

  // An indirect block at `level` (1 = single) maps perBlock^level file blocks from `first`.
  const visited = new Set<number>();
  const walk = async (block: number, level: number, first: number): Promise<void> => {
    if (visited.has(block)) throw new FormatError(`${where}: indirect block ${block} is referenced twice`);
    visited.add(block);
    const bytes = await readBlock(
      volume,
      block,
      `${where}: ${['', 'single', 'double', 'triple'][level]} indirect block`,
    );
    onMapBlock?.(block);
    const span = perBlock ** (level - 1);
    for (let index = 0; index < perBlock; index++) {
      const start = first + index * span;
      if (start >= fileBlocks) break;
      const pointer = bytes.readUInt32LE(index * 4);
      if (pointer === 0) continue;
      if (level === 1) addData(start, pointer);
      else await walk(pointer, level - 1, start);
    }
  };
  let first = DIRECT_BLOCKS;
  for (let level = 1; level <= 3 && first < fileBlocks; level++) {
    const pointer = inode.blockArea.readUInt32LE((DIRECT_BLOCKS + level - 1) * 4);
    if (pointer !== 0) await walk(pointer, level, first);
    first += perBlock ** level;
  }
  return runs;
}

/** Index of the first run that ends after file block `block` (binary search). */
export function findRun(runs: readonly FileExtent[], block: number): number {
  let low = 0;
  let high = runs.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const run = runs[middle]!;
    if (run.logical + run.length <= block) low = middle + 1;
    else high = middle;
  }
  return low;
}
