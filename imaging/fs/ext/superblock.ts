// The ext2/3/4 superblock (1024 bytes at byte 1024 of the volume): parsed into typed
// values, checked for a geometry that can exist, and named the way blkid (type, UUID,
// label) and dumpe2fs (feature names) name them.
import { FormatError } from '../../../src/core/errors.js';
import { crc32cRaw } from './checksums.js';

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;
export const MAGIC_OFFSET = SUPERBLOCK_OFFSET + 0x38;

const COMPAT = 0;
const INCOMPAT = 1;
const RO_COMPAT = 2;

/** Feature bits, with the names dumpe2fs prints (lib/e2p/feature.c). */
const FEATURES: readonly { kind: number; bit: number; name: string }[] = [
  { kind: COMPAT, bit: 0x0001, name: 'dir_prealloc' },
  { kind: COMPAT, bit: 0x0002, name: 'imagic_inodes' },
  { kind: COMPAT, bit: 0x0004, name: 'has_journal' },
  { kind: COMPAT, bit: 0x0008, name: 'ext_attr' },
  { kind: COMPAT, bit: 0x0010, name: 'resize_inode' },
  { kind: COMPAT, bit: 0x0020, name: 'dir_index' },
  { kind: COMPAT, bit: 0x0040, name: 'lazy_bg' },
  { kind: COMPAT, bit: 0x0100, name: 'snapshot_bitmap' },
  { kind: COMPAT, bit: 0x0200, name: 'sparse_super2' },
  { kind: COMPAT, bit: 0x0400, name: 'fast_commit' },
  { kind: COMPAT, bit: 0x0800, name: 'stable_inodes' },
  { kind: COMPAT, bit: 0x1000, name: 'orphan_file' },
  { kind: INCOMPAT, bit: 0x0001, name: 'compression' },
  { kind: INCOMPAT, bit: 0x0002, name: 'filetype' },
  { kind: INCOMPAT, bit: 0x0004, name: 'needs_recovery' },
  { kind: INCOMPAT, bit: 0x0008, name: 'journal_dev' },
  { kind: INCOMPAT, bit: 0x0010, name: 'meta_bg' },
  { kind: INCOMPAT, bit: 0x0040, name: 'extent' },
  { kind: INCOMPAT, bit: 0x0080, name: '64bit' },
  { kind: INCOMPAT, bit: 0x0100, name: 'mmp' },
  { kind: INCOMPAT, bit: 0x0200, name: 'flex_bg' },
  { kind: INCOMPAT, bit: 0x0400, name: 'ea_inode' },
  { kind: INCOMPAT, bit: 0x1000, name: 'dirdata' },
  { kind: INCOMPAT, bit: 0x2000, name: 'metadata_csum_seed' },
  { kind: INCOMPAT, bit: 0x4000, name: 'large_dir' },
  { kind: INCOMPAT, bit: 0x8000, name: 'inline_data' },
  { kind: INCOMPAT, bit: 0x10000, name: 'encrypt' },
  { kind: INCOMPAT, bit: 0x20000, name: 'casefold' },
  { kind: RO_COMPAT, bit: 0x0001, name: 'sparse_super' },
  { kind: RO_COMPAT, bit: 0x0002, name: 'large_file' },
  { kind: RO_COMPAT, bit: 0x0008, name: 'huge_file' },
  { kind: RO_COMPAT, bit: 0x0010, name: 'uninit_bg' },
  { kind: RO_COMPAT, bit: 0x0020, name: 'dir_nlink' },
  { kind: RO_COMPAT, bit: 0x0040, name: 'extra_isize' },
  { kind: RO_COMPAT, bit: 0x0100, name: 'quota' },
  { kind: RO_COMPAT, bit: 0x0200, name: 'bigalloc' },
  { kind: RO_COMPAT, bit: 0x0400, name: 'metadata_csum' },
  { kind: RO_COMPAT, bit: 0x0800, name: 'replica' },
  { kind: RO_COMPAT, bit: 0x1000, name: 'read-only' },
  { kind: RO_COMPAT, bit: 0x2000, name: 'project' },
  { kind: RO_COMPAT, bit: 0x4000, name: 'shared_blocks' },
  { kind: RO_COMPAT, bit: 0x8000, name: 'verity' },
  { kind: RO_COMPAT, bit: 0x10000, name: 'orphan_present' },
];

/**
 * Incompatible and read-only-compatible features whose meaning for the block layout
 * is understood. Anything else may change what a bitmap bit or a descriptor means, so
 * the volume is refused (and captured raw) rather than guessed at.
 */
const UNDERSTOOD_INCOMPAT =
  0x0002 |
  0x0004 |
  0x0010 |
  0x0040 |
  0x0080 |
  0x0100 |
  0x0200 |
  0x0400 |
  0x1000 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000 |
  0x20000;
const UNDERSTOOD_RO_COMPAT =
  0x0001 |
  0x0002 |
  0x0004 |
  0x0008 |
  0x0010 |
  0x0020 |
  0x0040 |
  0x0100 |
  0x0200 |
  0x0400 |
  0x0800 |
  0x1000 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000;

/** What blkid accepts as plain ext2 or ext3 (libblkid superblocks/ext.c); beyond it, ext4. */
const EXT3_INCOMPAT = 0x0002 | 0x0004 | 0x0010;
const EXT2_INCOMPAT = 0x0002 | 0x0010;
const EXT3_RO_COMPAT = 0x0001 | 0x0002 | 0x0004;

export interface FeatureFlags {
  hasJournal: boolean;
  extAttr: boolean;
  resizeInode: boolean;
  dirIndex: boolean;
  sparseSuper2: boolean;
  filetype: boolean;
  needsRecovery: boolean;
  journalDevice: boolean;
  metaBg: boolean;
  extents: boolean;
  is64bit: boolean;
  mmp: boolean;
  flexBg: boolean;
  eaInode: boolean;
  dirdata: boolean;
  csumSeed: boolean;
  largeDir: boolean;
  inlineData: boolean;
  encrypt: boolean;
  casefold: boolean;
  sparseSuper: boolean;
  largeFile: boolean;
  hugeFile: boolean;
  gdtCsum: boolean;
  dirNlink: boolean;
  extraIsize: boolean;
  bigalloc: boolean;
  metadataCsum: boolean;
}

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

function featureNames(compat: number, incompat: number, roCompat: number): string[] {
  const names: string[] = [];
  const masks = [compat, incompat, roCompat];
  const letters = ['C', 'I', 'R'];
  // dumpe2fs order: compat, then incompat, then ro_compat, each by increasing bit.
  for (let kind = 0; kind < 3; kind++) {
    for (let bitIndex = 0; bitIndex < 32; bitIndex++) {
      const bit = 2 ** bitIndex;
      if (Math.floor(masks[kind]! / bit) % 2 === 0) continue;
      const known = FEATURES.find((feature) => feature.kind === kind && feature.bit === bit);
      names.push(known ? known.name : `FEATURE_${letters[kind]}${bitIndex}`);
    }
  }
  return names;
}

export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const isPowerOfTwo = (value: number): boolean => value > 0 && Number.isInteger(Math.log2(value));

/** Parse and check the 1024 superblock bytes of a volume of `volumeSize` bytes. */
export function parseSuperblock(bytes: Buffer, volumeSize: number, where: string): Superblock {
  const fail = (problem: string, field = 0): never => {
    throw new FormatError(
      `${where}: ext superblock at byte ${SUPERBLOCK_OFFSET}: ${problem}${field ? ` (field at byte ${SUPERBLOCK_OFFSET + field})` : ''}`,
    );
  };
  if (bytes.length < SUPERBLOCK_SIZE) fail(`only ${bytes.length} bytes could be read`);
  const u8 = (offset: number) => bytes.readUInt8(offset);
  const u16 = (offset: number) => bytes.readUInt16LE(offset);
  const u32 = (offset: number) => bytes.readUInt32LE(offset);

  const magic = u16(0x38);
  if (magic !== EXT_MAGIC) fail(`bad magic 0x${magic.toString(16).padStart(4, '0')}, expected 0xef53`, 0x38);

  const revLevel = u32(0x4c);
  if (revLevel > 1) fail(`unknown revision level ${revLevel}`, 0x4c);
  const dynamic = revLevel >= 1;
  const compat = dynamic ? u32(0x5c) : 0;
  const incompat = dynamic ? u32(0x60) : 0;
  const roCompat = dynamic ? u32(0x64) : 0;
  const flag = (mask: number, bit: number) => (mask & bit) !== 0;
  const has: FeatureFlags = {
    hasJournal: flag(compat, 0x0004),
    extAttr: flag(compat, 0x0008),
    resizeInode: flag(compat, 0x0010),
    dirIndex: flag(compat, 0x0020),
    sparseSuper2: flag(compat, 0x0200),
    filetype: flag(incompat, 0x0002),
    needsRecovery: flag(incompat, 0x0004),
    journalDevice: flag(incompat, 0x0008),
    metaBg: flag(incompat, 0x0010),
    extents: flag(incompat, 0x0040),
    is64bit: flag(incompat, 0x0080),
    mmp: flag(incompat, 0x0100),
    flexBg: flag(incompat, 0x0200),
    eaInode: flag(incompat, 0x0400),
    dirdata: flag(incompat, 0x1000),
    csumSeed: flag(incompat, 0x2000),
    largeDir: flag(incompat, 0x4000),
    inlineData: flag(incompat, 0x8000),
    encrypt: flag(incompat, 0x10000),
    casefold: flag(incompat, 0x20000),
    sparseSuper: flag(roCompat, 0x0001),
    largeFile: flag(roCompat, 0x0002),
    hugeFile: flag(roCompat, 0x0008),
    gdtCsum: flag(roCompat, 0x0010),
    dirNlink: flag(roCompat, 0x0020),
    extraIsize: flag(roCompat, 0x0040),
    bigalloc: flag(roCompat, 0x0200),
    metadataCsum: flag(roCompat, 0x0400),
  };

  if (has.metadataCsum) {
    const checksumType = u8(0x175);
    if (checksumType !== 1) fail(`unknown checksum type ${checksumType} (only crc32c is defined)`, 0x175);
    const stored = u32(0x3fc);
    const computed = crc32cRaw(0xffffffff, bytes, 0, 0x3fc);
    if (stored !== computed)
      fail(
        `checksum 0x${stored.toString(16).padStart(8, '0')} does not match the contents (0x${computed.toString(16).padStart(8, '0')})`,
        0x3fc,
      );
  }
  if (has.journalDevice) fail('this is an external journal device, not a filesystem', 0x60);
  const unknownIncompat = incompat & ~UNDERSTOOD_INCOMPAT;
  if (unknownIncompat)
    fail(`unsupported incompatible features: ${featureNames(0, unknownIncompat, 0).join(' ')}`, 0x60);
  const unknownRoCompat = roCompat & ~UNDERSTOOD_RO_COMPAT;
  if (unknownRoCompat)
    fail(`unsupported read-only-compatible features: ${featureNames(0, 0, unknownRoCompat).join(' ')}`, 0x64);

  const logBlockSize = u32(0x18);
  if (logBlockSize > 6) fail(`block size 2^(10+${logBlockSize}) is beyond the 64 KiB maximum`, 0x18);
  const blockSize = 1024 << logBlockSize;
  const logClusterSize = u32(0x1c);
  let clusterSize = blockSize;
  if (has.bigalloc) {
    if (logClusterSize < logBlockSize || logClusterSize > logBlockSize + 16)
      fail(`cluster size 2^(10+${logClusterSize}) is impossible with ${blockSize}-byte blocks`, 0x1c);
    clusterSize = 1024 * 2 ** logClusterSize;
  } else if (logClusterSize !== logBlockSize) {
    fail(`fragment size 2^(10+${logClusterSize}) differs from the block size ${blockSize} without bigalloc`, 0x1c);
  }
  const clusterRatio = clusterSize / blockSize;

  const blocksCount = u32(0x04) + (has.is64bit ? u32(0x150) * 0x1_0000_0000 : 0);
  const freeBlocksCount = u32(0x0c) + (has.is64bit ? u32(0x158) * 0x1_0000_0000 : 0);
  const firstDataBlock = u32(0x14);
  const blocksPerGroup = u32(0x20);
  const clustersPerGroup = has.bigalloc ? u32(0x24) : blocksPerGroup;
  const inodesPerGroup = u32(0x28);
  const inodesCount = u32(0x00);

  const expectedFirstDataBlock = blockSize === 1024 && clusterRatio === 1 ? 1 : 0;
  if (firstDataBlock !== expectedFirstDataBlock)
    fail(
      `first data block ${firstDataBlock} is impossible with ${blockSize}-byte blocks (expected ${expectedFirstDataBlock})`,
      0x14,
    );
  if (!Number.isSafeInteger(blocksCount * blockSize) || blocksCount <= firstDataBlock + 1)
    fail(`block count ${blocksCount} is impossible`, 0x04);
  if (blocksCount * blockSize > volumeSize)
    fail(
      `the filesystem's ${blocksCount} blocks of ${blockSize} bytes (${blocksCount * blockSize} bytes) do not fit in the ${volumeSize}-byte volume`,
      0x04,
    );
  if (clustersPerGroup < 8 || clustersPerGroup > 8 * blockSize || clustersPerGroup % 8 !== 0)
    fail(
      `${clustersPerGroup} ${has.bigalloc ? 'clusters' : 'blocks'} per group is impossible with ${blockSize}-byte blocks`,
      has.bigalloc ? 0x24 : 0x20,
    );
  if (blocksPerGroup !== clustersPerGroup * clusterRatio)
    fail(`${blocksPerGroup} blocks per group do not make ${clustersPerGroup} clusters of ${clusterRatio} blocks`, 0x20);
  if (inodesPerGroup < 1 || inodesPerGroup > 8 * blockSize)
    fail(`${inodesPerGroup} inodes per group is impossible with ${blockSize}-byte blocks`, 0x28);

  const inodeSize = dynamic ? u16(0x58) : 128;
  if (!isPowerOfTwo(inodeSize) || inodeSize < 128 || inodeSize > blockSize)
    fail(`inode size ${inodeSize} is impossible`, 0x58);
  const firstInode = dynamic ? u32(0x54) : 11;
  if (firstInode < 11 || firstInode > inodesCount) fail(`first non-reserved inode ${firstInode} is impossible`, 0x54);

  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  if (inodesCount !== groupCount * inodesPerGroup)
    fail(`inode count ${inodesCount} is not ${groupCount} groups of ${inodesPerGroup} inodes`, 0x00);

  let descSize = 32;
  if (has.is64bit) {
    descSize = u16(0xfe);
    if (!isPowerOfTwo(descSize) || descSize < 64 || descSize > 1024)
      fail(`group descriptor size ${descSize} is impossible for a 64bit filesystem`, 0xfe);
  }
  const descriptorsPerBlock = blockSize / descSize;
  const descriptorBlocks = Math.ceil(groupCount / descriptorsPerBlock);
  const firstMetaBg = u32(0x104);
  if (has.metaBg && firstMetaBg > descriptorBlocks)
    fail(`first meta block group ${firstMetaBg} is beyond the ${descriptorBlocks} descriptor blocks`, 0x104);
  const reservedGdtBlocks = dynamic ? u16(0xce) : 0;
  if (reservedGdtBlocks > blockSize / 4)
    fail(`${reservedGdtBlocks} reserved descriptor blocks is more than a resize inode can map`, 0xce);
  const logGroupsPerFlex = has.flexBg ? u8(0x174) : 0;
  if (logGroupsPerFlex > 31) fail(`2^${logGroupsPerFlex} groups per flex group is impossible`, 0x174);
  const inodeBlocksPerGroup = Math.ceil((inodesPerGroup * inodeSize) / blockSize);

  const uuid = Buffer.from(bytes.subarray(0x68, 0x78));
  const labelBytes = bytes.subarray(0x78, 0x88);
  const labelEnd = labelBytes.indexOf(0);
  const label = labelBytes.subarray(0, labelEnd < 0 ? 16 : labelEnd).toString('utf8');
  const checksumSeed = has.csumSeed ? u32(0x270) : crc32cRaw(0xffffffff, uuid);

  let type: Superblock['type'] = 'ext4';
  const withinExt3 = (incompat & ~EXT3_INCOMPAT) === 0 && (roCompat & ~EXT3_RO_COMPAT) === 0;
  const withinExt2 = (incompat & ~EXT2_INCOMPAT) === 0 && (roCompat & ~EXT3_RO_COMPAT) === 0;
  if (has.hasJournal && withinExt3) type = 'ext3';
  else if (!has.hasJournal && withinExt2) type = 'ext2';

  return {
    inodesCount,
    blocksCount,
    freeBlocksCount,
    firstDataBlock,
    blockSize,
    clusterSize,
    clusterRatio,
    blocksPerGroup,
    clustersPerGroup,
    inodesPerGroup,
    state: u16(0x3a),
    creatorOs: u32(0x48),
    revLevel,
    firstInode,
    inodeSize,
    compat,
    incompat,
    roCompat,
    uuid,
    label: label === '' ? null : label,
    reservedGdtBlocks,
    journalInode: has.hasJournal ? u32(0xe0) : 0,
    descSize,
    firstMetaBg,
    logGroupsPerFlex,
    backupGroups: [u32(0x24c), u32(0x250)],
    checksumSeed,
    has,
    features: featureNames(compat, incompat, roCompat),
    type,
    groupCount,
    descriptorsPerBlock,
    descriptorBlocks,
    inodeBlocksPerGroup,
  };
}

/** Whether extended attributes named "gnu.*" are visible (the kernel shows them only for Hurd filesystems). */
export function isHurd(superblock: Superblock): boolean {
  return superblock.creatorOs === OS_HURD;
}
