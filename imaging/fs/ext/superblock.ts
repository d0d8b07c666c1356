// The ext2/3/4 superblock (1024 bytes at byte 1024 of the volume): parsed into typed
// values, checked for a geometry that can exist, and named the way blkid (type, UUID,
// label) and dumpe2fs (feature names) name them.
import { FormatError } from '../../../src/core/errors.js';
import { crc32cRaw } from './checksums.js';
import {
  checkFeaturesUnderstood,
  extType,
  type FeatureFlags,
  type FeatureMasks,
  featureFlags,
  featureNames,
} from './superblock-features.js';

export type { FeatureFlags } from './superblock-features.js';

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;
export const MAGIC_OFFSET = SUPERBLOCK_OFFSET + 0x38;

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  freeBlocksCount: number;
  firstDataBlock: number;
  blockSize: number;
  clusterSize: number;
  /** Blocks per allocation cluster: 1 unless bigalloc. */
  clusterRatio: number;
  blocksPerGroup: number;
  clustersPerGroup: number;
  inodesPerGroup: number;
  state: number;
  creatorOs: number;
  revLevel: number;
  firstInode: number;
  inodeSize: number;
  compat: number;
  incompat: number;
  roCompat: number;
  uuid: Buffer;
  label: string | null;
  reservedGdtBlocks: number;
  journalInode: number;
  descSize: number;
  firstMetaBg: number;
  logGroupsPerFlex: number;
  backupGroups: [number, number];
  /** Seed of every metadata_csum checksum: s_checksum_seed, or crc32c of the UUID. */
  checksumSeed: number;
  has: FeatureFlags;
  features: string[];
  type: 'ext2' | 'ext3' | 'ext4';
  groupCount: number;
  descriptorsPerBlock: number;
  /** Blocks holding all group descriptors when they sit together after the superblock. */
  descriptorBlocks: number;
  inodeBlocksPerGroup: number;
}

export const STATE_CLEAN = 0x0001;
export const STATE_ERRORS = 0x0002;
export const OS_LINUX = 0;
const OS_HURD = 1;

export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const isPowerOfTwo = (value: number): boolean => value > 0 && Number.isInteger(Math.log2(value));

/** The superblock's bytes with the reads and the error every check below shares. */
class SuperblockFields {
  constructor(
    private readonly bytes: Buffer,
    private readonly where: string,
  ) {}

  readonly fail = (problem: string, field = 0): never => {
    throw new FormatError(
      `${this.where}: ext superblock at byte ${SUPERBLOCK_OFFSET}: ${problem}${field ? ` (field at byte ${SUPERBLOCK_OFFSET + field})` : ''}`,
    );
  };

  u8(offset: number): number {
    return this.bytes.readUInt8(offset);
  }

  u16(offset: number): number {
    return this.bytes.readUInt16LE(offset);
  }

  u32(offset: number): number {
    return this.bytes.readUInt32LE(offset);
  }

  /** A 32-bit count whose high half sits at `highOffset` on 64bit filesystems. */
  u64(lowOffset: number, highOffset: number, wide: boolean): number {
    return this.u32(lowOffset) + (wide ? this.u32(highOffset) * 0x1_0000_0000 : 0);
  }

  /** The stored crc32c (metadata_csum) and the one the bytes before it give. */
  checksum(): { stored: number; computed: number } {
    return { stored: this.u32(0x3fc), computed: crc32cRaw(0xffffffff, this.bytes, 0, 0x3fc) };
  }

  slice(start: number, end: number): Buffer {
    return this.bytes.subarray(start, end);
  }
}

interface Revision extends FeatureMasks {
  revLevel: number;
  /** Revision 1 ("dynamic") superblocks have feature words, inode size and first inode. */
  dynamic: boolean;
}

function readRevision(fields: SuperblockFields): Revision {
  const magic = fields.u16(0x38);
  if (magic !== EXT_MAGIC) fields.fail(`bad magic 0x${magic.toString(16).padStart(4, '0')}, expected 0xef53`, 0x38);
  const revLevel = fields.u32(0x4c);
  if (revLevel > 1) fields.fail(`unknown revision level ${revLevel}`, 0x4c);
  const dynamic = revLevel >= 1;
  return {
    revLevel,
    dynamic,
    compat: dynamic ? fields.u32(0x5c) : 0,
    incompat: dynamic ? fields.u32(0x60) : 0,
    roCompat: dynamic ? fields.u32(0x64) : 0,
  };
}

function checkSuperblockChecksum(fields: SuperblockFields): void {
  const checksumType = fields.u8(0x175);
  if (checksumType !== 1) fields.fail(`unknown checksum type ${checksumType} (only crc32c is defined)`, 0x175);
  const { stored, computed } = fields.checksum();
  if (stored !== computed)
    fields.fail(
      `checksum 0x${stored.toString(16).padStart(8, '0')} does not match the contents (0x${computed.toString(16).padStart(8, '0')})`,
      0x3fc,
    );
}

interface BlockSizes {
  blockSize: number;
  clusterSize: number;
  clusterRatio: number;
}

function readBlockSizes(fields: SuperblockFields, has: FeatureFlags): BlockSizes {
  const logBlockSize = fields.u32(0x18);
  if (logBlockSize > 6) fields.fail(`block size 2^(10+${logBlockSize}) is beyond the 64 KiB maximum`, 0x18);
  const blockSize = 1024 << logBlockSize;
  const logClusterSize = fields.u32(0x1c);
  let clusterSize = blockSize;
  if (has.bigalloc) {
    if (logClusterSize < logBlockSize || logClusterSize > logBlockSize + 16)
      fields.fail(`cluster size 2^(10+${logClusterSize}) is impossible with ${blockSize}-byte blocks`, 0x1c);
    clusterSize = 1024 * 2 ** logClusterSize;
  } else if (logClusterSize !== logBlockSize) {
    fields.fail(
      `fragment size 2^(10+${logClusterSize}) differs from the block size ${blockSize} without bigalloc`,
      0x1c,
    );
  }
  return { blockSize, clusterSize, clusterRatio: clusterSize / blockSize };
}

interface GroupGeometry {
  blocksCount: number;
  freeBlocksCount: number;
  firstDataBlock: number;
  blocksPerGroup: number;
  clustersPerGroup: number;
  inodesPerGroup: number;
}

function readGroupGeometry(
  fields: SuperblockFields,
  has: FeatureFlags,
  sizes: BlockSizes,
  volumeSize: number,
): GroupGeometry {
  const { blockSize, clusterRatio } = sizes;
  const geometry: GroupGeometry = {
    blocksCount: fields.u64(0x04, 0x150, has.is64bit),
    freeBlocksCount: fields.u64(0x0c, 0x158, has.is64bit),
    firstDataBlock: fields.u32(0x14),
    blocksPerGroup: fields.u32(0x20),
    clustersPerGroup: has.bigalloc ? fields.u32(0x24) : fields.u32(0x20),
    inodesPerGroup: fields.u32(0x28),
  };
  const { blocksCount, firstDataBlock, blocksPerGroup, clustersPerGroup, inodesPerGroup } = geometry;
  const expectedFirstDataBlock = blockSize === 1024 && clusterRatio === 1 ? 1 : 0;
  if (firstDataBlock !== expectedFirstDataBlock)
    fields.fail(
      `first data block ${firstDataBlock} is impossible with ${blockSize}-byte blocks (expected ${expectedFirstDataBlock})`,
      0x14,
    );
  if (!Number.isSafeInteger(blocksCount * blockSize) || blocksCount <= firstDataBlock + 1)
    fields.fail(`block count ${blocksCount} is impossible`, 0x04);
  if (blocksCount * blockSize > volumeSize)
    fields.fail(
      `the filesystem's ${blocksCount} blocks of ${blockSize} bytes (${blocksCount * blockSize} bytes) do not fit in the ${volumeSize}-byte volume`,
      0x04,
    );
  if (clustersPerGroup < 8 || clustersPerGroup > 8 * blockSize || clustersPerGroup % 8 !== 0)
    fields.fail(
      `${clustersPerGroup} ${has.bigalloc ? 'clusters' : 'blocks'} per group is impossible with ${blockSize}-byte blocks`,
      has.bigalloc ? 0x24 : 0x20,
    );
  if (blocksPerGroup !== clustersPerGroup * clusterRatio)
    fields.fail(
      `${blocksPerGroup} blocks per group do not make ${clustersPerGroup} clusters of ${clusterRatio} blocks`,
      0x20,
    );
  if (inodesPerGroup < 1 || inodesPerGroup > 8 * blockSize)
    fields.fail(`${inodesPerGroup} inodes per group is impossible with ${blockSize}-byte blocks`, 0x28);
  return geometry;
}

interface InodeGeometry {
  inodesCount: number;
  inodeSize: number;
  firstInode: number;
  groupCount: number;
  inodeBlocksPerGroup: number;
}

function readInodeGeometry(
  fields: SuperblockFields,
  dynamic: boolean,
  blockSize: number,
  groups: GroupGeometry,
): InodeGeometry {
  const inodesCount = fields.u32(0x00);
  const inodeSize = dynamic ? fields.u16(0x58) : 128;
  if (!isPowerOfTwo(inodeSize) || inodeSize < 128 || inodeSize > blockSize)
    fields.fail(`inode size ${inodeSize} is impossible`, 0x58);
  const firstInode = dynamic ? fields.u32(0x54) : 11;
  if (firstInode < 11 || firstInode > inodesCount)
    fields.fail(`first non-reserved inode ${firstInode} is impossible`, 0x54);
  const { inodesPerGroup } = groups;
  const groupCount = Math.ceil((groups.blocksCount - groups.firstDataBlock) / groups.blocksPerGroup);
  if (inodesCount !== groupCount * inodesPerGroup)
    fields.fail(`inode count ${inodesCount} is not ${groupCount} groups of ${inodesPerGroup} inodes`, 0x00);
  const inodeBlocksPerGroup = Math.ceil((inodesPerGroup * inodeSize) / blockSize);
  return { inodesCount, inodeSize, firstInode, groupCount, inodeBlocksPerGroup };
}

interface DescriptorLayout {
  descSize: number;
  descriptorsPerBlock: number;
  descriptorBlocks: number;
  firstMetaBg: number;
  reservedGdtBlocks: number;
  logGroupsPerFlex: number;
}

function readDescriptorLayout(
  fields: SuperblockFields,
  revision: Revision,
  has: FeatureFlags,
  blockSize: number,
  groupCount: number,
): DescriptorLayout {
  let descSize = 32;
  if (has.is64bit) {
    descSize = fields.u16(0xfe);
    if (!isPowerOfTwo(descSize) || descSize < 64 || descSize > 1024)
      fields.fail(`group descriptor size ${descSize} is impossible for a 64bit filesystem`, 0xfe);
  }
  const descriptorsPerBlock = blockSize / descSize;
  const descriptorBlocks = Math.ceil(groupCount / descriptorsPerBlock);
  const firstMetaBg = fields.u32(0x104);
  if (has.metaBg && firstMetaBg > descriptorBlocks)
    fields.fail(`first meta block group ${firstMetaBg} is beyond the ${descriptorBlocks} descriptor blocks`, 0x104);
  const reservedGdtBlocks = revision.dynamic ? fields.u16(0xce) : 0;
  if (reservedGdtBlocks > blockSize / 4)
    fields.fail(`${reservedGdtBlocks} reserved descriptor blocks is more than a resize inode can map`, 0xce);
  const logGroupsPerFlex = has.flexBg ? fields.u8(0x174) : 0;
  if (logGroupsPerFlex > 31) fields.fail(`2^${logGroupsPerFlex} groups per flex group is impossible`, 0x174);
  return { descSize, descriptorsPerBlock, descriptorBlocks, firstMetaBg, reservedGdtBlocks, logGroupsPerFlex };
}

/** What names the filesystem (blkid's UUID and label) and seeds its metadata checksums. */
function readIdentity(fields: SuperblockFields, has: FeatureFlags) {
  const uuid = Buffer.from(fields.slice(0x68, 0x78));
  const labelBytes = fields.slice(0x78, 0x88);
  const labelEnd = labelBytes.indexOf(0);
  const label = labelBytes.subarray(0, labelEnd < 0 ? 16 : labelEnd).toString('utf8');
  const checksumSeed = has.csumSeed ? fields.u32(0x270) : crc32cRaw(0xffffffff, uuid);
  return { uuid, label: label === '' ? null : label, checksumSeed };
}

/** Parse and check the 1024 superblock bytes of a volume of `volumeSize` bytes. */
export function parseSuperblock(bytes: Buffer, volumeSize: number, where: string): Superblock {
  const fields = new SuperblockFields(bytes, where);
  if (bytes.length < SUPERBLOCK_SIZE) fields.fail(`only ${bytes.length} bytes could be read`);
  const revision = readRevision(fields);
  const has = featureFlags(revision);
  if (has.metadataCsum) checkSuperblockChecksum(fields);
  checkFeaturesUnderstood(revision, has, fields.fail);
  const sizes = readBlockSizes(fields, has);
  const groups = readGroupGeometry(fields, has, sizes, volumeSize);
  const inodes = readInodeGeometry(fields, revision.dynamic, sizes.blockSize, groups);
  const layout = readDescriptorLayout(fields, revision, has, sizes.blockSize, inodes.groupCount);
  const { compat, incompat, roCompat, revLevel } = revision;
  return {
    ...sizes,
    ...groups,
    ...inodes,
    ...layout,
    ...readIdentity(fields, has),
    state: fields.u16(0x3a),
    creatorOs: fields.u32(0x48),
    revLevel,
    compat,
    incompat,
    roCompat,
    journalInode: has.hasJournal ? fields.u32(0xe0) : 0,
    backupGroups: [fields.u32(0x24c), fields.u32(0x250)],
    has,
    features: featureNames(compat, incompat, roCompat),
    type: extType(revision, has),
  };
}

/** Whether extended attributes named "gnu.*" are visible (the kernel shows them only for Hurd filesystems). */
export function isHurd(superblock: Superblock): boolean {
  return superblock.creatorOs === OS_HURD;
}
