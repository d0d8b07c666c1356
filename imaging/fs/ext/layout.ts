// Where the fixed metadata of each block group sits: superblock backups (sparse_super,
// sparse_super2), the group descriptor table and its reserved growth blocks, and the
// meta_bg descriptor copies. Follows ext2fs_super_and_bgd_loc2 and the kernel's
// descriptor_loc, so BLOCK_UNINIT groups can be reconstructed without their bitmap.
import type { Superblock } from './superblock.js';

export function groupFirstBlock(superblock: Superblock, group: number): number {
  return superblock.firstDataBlock + group * superblock.blocksPerGroup;
}

/** Blocks in a group: blocks_per_group, except for a shorter last group. */
export function groupBlockCount(superblock: Superblock, group: number): number {
  return Math.min(superblock.blocksPerGroup, superblock.blocksCount - groupFirstBlock(superblock, group));
}

function isPowerOf(value: number, base: number): boolean {
  let remaining = value;
  while (remaining >= base && remaining % base === 0) remaining /= base;
  return remaining === 1;
}

/** Whether a group holds a copy of the superblock. */
export function groupHasSuperblock(superblock: Superblock, group: number): boolean {
  if (group === 0) return true;
  if (superblock.has.sparseSuper2) return group === superblock.backupGroups[0] || group === superblock.backupGroups[1];
  if (group === 1 || !superblock.has.sparseSuper) return true;
  if (group % 2 === 0) return false;
  return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

/** The block holding the primary superblock (byte 1024): 1 with 1 KiB blocks, else 0. */
export function primarySuperblockBlock(superblock: Superblock): number {
  return Math.floor(1024 / superblock.blockSize);
}

/**
 * Descriptor blocks that follow each superblock copy: all of them (plus reserved
 * growth blocks) without meta_bg, only those before s_first_meta_bg with it.
 */
export function oldStyleDescriptorBlocks(superblock: Superblock): number {
  return superblock.has.metaBg ? superblock.firstMetaBg : superblock.descriptorBlocks + superblock.reservedGdtBlocks;
}

export interface GroupFixedMetadata {
  superblock: number | null;
  /** First block and count of the descriptor table copy (with reserved blocks) after the superblock. */
  oldDescriptors: { start: number; count: number } | null;
  /** The single meta_bg descriptor block copy this group holds. */
  newDescriptor: number | null;
}

/** Superblock and descriptor copies inside a group. */
export function groupFixedMetadata(superblock: Superblock, group: number): GroupFixedMetadata {
  let groupBlock = groupFirstBlock(superblock, group);
  // With 1 KiB blocks and bigalloc, group 0 starts at block 0 but the superblock is block 1.
  if (groupBlock === 0 && superblock.blockSize === 1024) groupBlock = 1;
  const hasSuper = groupHasSuperblock(superblock, group);
  const result: GroupFixedMetadata = {
    superblock: hasSuper ? groupBlock : null,
    oldDescriptors: null,
    newDescriptor: null,
  };
  const perMetaGroup = superblock.descriptorsPerBlock;
  const metaGroup = Math.floor(group / perMetaGroup);
  if (!superblock.has.metaBg || metaGroup < superblock.firstMetaBg) {
    if (hasSuper) {
      const start = groupBlock + 1;
      const count = Math.min(oldStyleDescriptorBlocks(superblock), superblock.blocksCount - start);
      if (count > 0) result.oldDescriptors = { start, count };
    }
  } else {
    const position = group % perMetaGroup;
    if (position === 0 || position === 1 || position === perMetaGroup - 1)
      result.newDescriptor = groupBlock + (hasSuper ? 1 : 0);
  }
  return result;
}

/** The primary copy of descriptor block `index` (the one the kernel reads). */
export function descriptorBlockLocation(superblock: Superblock, index: number): number {
  const superBlock = primarySuperblockBlock(superblock);
  if (!superblock.has.metaBg || index < superblock.firstMetaBg) return superBlock + 1 + index;
  const group = index * superblock.descriptorsPerBlock;
  let adjust = groupHasSuperblock(superblock, group) ? 1 : 0;
  if (superblock.blockSize === 1024 && index === 0 && superblock.firstDataBlock === 0) adjust++;
  return groupFirstBlock(superblock, group) + adjust;
}
