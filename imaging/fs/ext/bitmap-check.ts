// The block bitmaps checked against the rest of the filesystem: superblocks, descriptors,
// bitmaps, inode tables and the journal must be marked used, or the bitmaps are damaged
// and the volume is captured raw; blocks that in-use inodes reference (data, extent tree
// and indirect blocks, xattr blocks) but the bitmaps mark free are captured anyway.
// Like e2fsck, an inode is in use when its link count is not zero, whatever the inode
// bitmap says.
import { FormatError } from '../../../src/core/errors.js';
import type { RangeList } from '../../ranges.js';
import { type CaptureMap, crossCheckMap, type MetadataRegion, type ReferencedBlocks } from '../used-map-check.js';
import { fileBlockMap } from './block-map.js';
import { BG_INODE_UNINIT } from './group-descriptors.js';
import { hasBlockMap, InodeTable, parseInode } from './inode.js';
import { groupFixedMetadata } from './layout.js';
import type { ExtVolume } from './volume.js';

/** Inode tables are read in pieces of this size: large enough for few reads, small enough to keep memory flat. */
const INODE_TABLE_READ_BYTES = 1 << 20;
/** Offset of i_links_count in an inode: a zero there means free, without parsing the rest. */
const LINKS_COUNT_OFFSET = 0x1a;

function blockRegion(volume: ExtVolume, name: string, first: number, count: number): MetadataRegion {
  const { blockSize } = volume.superblock;
  return { name, start: first * blockSize, end: (first + count) * blockSize };
}

/** Every structure the filesystem cannot do without, in the order a reader meets them. */
async function metadataRegions(volume: ExtVolume): Promise<MetadataRegion[]> {
  const { superblock, groups } = volume;
  const regions: MetadataRegion[] = [];
  for (let group = 0; group < groups.count; group++) {
    const fixed = groupFixedMetadata(superblock, group);
    const copy = group === 0 ? 'primary' : `group ${group}'s backup`;
    if (fixed.superblock !== null) regions.push(blockRegion(volume, `${copy} superblock`, fixed.superblock, 1));
    if (fixed.oldDescriptors) {
      const descriptors = Math.min(fixed.oldDescriptors.count, superblock.descriptorBlocks);
      regions.push(blockRegion(volume, `${copy} group descriptors`, fixed.oldDescriptors.start, descriptors));
      if (fixed.oldDescriptors.count > descriptors)
        regions.push(
          blockRegion(
            volume,
            `${copy} reserved GDT blocks`,
            fixed.oldDescriptors.start + descriptors,
            fixed.oldDescriptors.count - descriptors,
          ),
        );
    }
    if (fixed.newDescriptor !== null)
      regions.push(blockRegion(volume, `group descriptors in group ${group}`, fixed.newDescriptor, 1));
  }
  for (let group = 0; group < groups.count; group++) {
    regions.push(blockRegion(volume, `block bitmap of group ${group}`, groups.blockBitmap[group]!, 1));
    regions.push(blockRegion(volume, `inode bitmap of group ${group}`, groups.inodeBitmap[group]!, 1));
    regions.push(
      blockRegion(volume, `inode table of group ${group}`, groups.inodeTable[group]!, superblock.inodeBlocksPerGroup),
    );
  }
  if (superblock.has.hasJournal && superblock.journalInode !== 0) {
    try {
      const journal = await new InodeTable(volume).read(superblock.journalInode);
      const runs = await fileBlockMap(volume, journal, (block) =>
        regions.push(blockRegion(volume, 'journal', block, 1)),
      );
      for (const run of runs) regions.push(blockRegion(volume, 'journal', run.physical, run.length));
    } catch (error) {
      // An unreadable journal is reported by journal.ts; it is no reason to distrust the bitmaps.
      if (!(error instanceof FormatError)) throw error;
    }
  }
  return regions;
}

/** Inodes of one group that may be in use: none of an INODE_UNINIT group, and never the unused tail of a table. */
function groupInodeSlots(volume: ExtVolume, group: number): number {
  const { superblock, groups } = volume;
  if (!groups.flagsValid) return superblock.inodesPerGroup;
  if (groups.flags[group]! & BG_INODE_UNINIT) return 0;
  const unused = groups.itableUnused[group]!;
  return unused > superblock.inodesPerGroup ? superblock.inodesPerGroup : superblock.inodesPerGroup - unused;
}

/** Every block an in-use inode references, by the inode that owns it. */
async function referenceInodeBlocks(volume: ExtVolume, referenced: ReferencedBlocks): Promise<void> {
  const { superblock, groups, reader } = volume;
  const { blockSize, inodeSize, inodesPerGroup, blocksCount } = superblock;
  const referenceBlocks = (owner: number, first: number, count: number) => {
    if (first + count > blocksCount)
      referenced.skip(`inode ${owner}: blocks ${first}-${first + count - 1} are outside the filesystem`);
    else referenced.reference(owner, first * blockSize, (first + count) * blockSize);
  };
  for (let group = 0; group < groups.count; group++) {
    const slots = groupInodeSlots(volume, group);
    const tableStart = groups.inodeTable[group]! * blockSize;
    if (slots === 0) continue;
    if (tableStart + slots * inodeSize > reader.size) {
      referenced.skip(`inode table of group ${group} at block ${groups.inodeTable[group]} is outside the filesystem`);
      continue;
    }
    const perRead = Math.max(1, Math.floor(INODE_TABLE_READ_BYTES / inodeSize));
    for (let firstSlot = 0; firstSlot < slots; firstSlot += perRead) {
      const count = Math.min(perRead, slots - firstSlot);
      const table = await reader.read(tableStart + firstSlot * inodeSize, count * inodeSize);
      for (let slot = 0; slot < count; slot++) {
        const at = slot * inodeSize;
        if (table.readUInt16LE(at + LINKS_COUNT_OFFSET) === 0) continue;
        const number = group * inodesPerGroup + firstSlot + slot + 1;
        try {
          const inode = parseInode(
            volume,
            number,
            tableStart + at + firstSlot * inodeSize,
            table.subarray(at, at + inodeSize),
          );
          if (inode.xattrBlock !== 0) referenceBlocks(number, inode.xattrBlock, 1);
          if (!hasBlockMap(inode, superblock)) continue;
          const runs = await fileBlockMap(volume, inode, (block) => referenceBlocks(number, block, 1));
          for (const run of runs) referenceBlocks(number, run.physical, run.length);
        } catch (error) {
          if (error instanceof FormatError) referenced.skip(error.message);
          else if (error instanceof RangeError) referenced.skip(`inode ${number}: malformed (${error.message})`);
          else throw error;
        }
      }
    }
  }
}

/** The capture map of an ext volume from its block bitmaps (`used`, before idle journal blocks are left out). */
export async function checkBlockBitmaps(volume: ExtVolume, used: RangeList): Promise<CaptureMap> {
  const wording = {
    volume: `${volume.superblock.type} on ${volume.reader.description}`,
    map: 'the block bitmap',
    unit: 'block',
    unitSize: volume.superblock.blockSize,
    owner: 'inode',
  };
  return crossCheckMap(used, volume.reader.size, wording, await metadataRegions(volume), (referenced) =>
    referenceInodeBlocks(volume, referenced),
  );
}
