// The feature bits of an ext2/3/4 superblock: their dumpe2fs names, the typed flags the
// rest of the module reads, which of them this reader understands, and the type (ext2,
// ext3, ext4) blkid reports for a given set.

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

/** Where each typed flag lives: the feature word (compat, incompat, ro_compat) and its bit. */
const FLAG_BITS: Readonly<Record<keyof FeatureFlags, readonly [kind: number, bit: number]>> = {
  hasJournal: [COMPAT, 0x0004],
  extAttr: [COMPAT, 0x0008],
  resizeInode: [COMPAT, 0x0010],
  dirIndex: [COMPAT, 0x0020],
  sparseSuper2: [COMPAT, 0x0200],
  filetype: [INCOMPAT, 0x0002],
  needsRecovery: [INCOMPAT, 0x0004],
  journalDevice: [INCOMPAT, 0x0008],
  metaBg: [INCOMPAT, 0x0010],
  extents: [INCOMPAT, 0x0040],
  is64bit: [INCOMPAT, 0x0080],
  mmp: [INCOMPAT, 0x0100],
  flexBg: [INCOMPAT, 0x0200],
  eaInode: [INCOMPAT, 0x0400],
  dirdata: [INCOMPAT, 0x1000],
  csumSeed: [INCOMPAT, 0x2000],
  largeDir: [INCOMPAT, 0x4000],
  inlineData: [INCOMPAT, 0x8000],
  encrypt: [INCOMPAT, 0x10000],
  casefold: [INCOMPAT, 0x20000],
  sparseSuper: [RO_COMPAT, 0x0001],
  largeFile: [RO_COMPAT, 0x0002],
  hugeFile: [RO_COMPAT, 0x0008],
  gdtCsum: [RO_COMPAT, 0x0010],
  dirNlink: [RO_COMPAT, 0x0020],
  extraIsize: [RO_COMPAT, 0x0040],
  bigalloc: [RO_COMPAT, 0x0200],
  metadataCsum: [RO_COMPAT, 0x0400],
};

/** The three feature words of a superblock (all zero before revision 1). */
export interface FeatureMasks {
  compat: number;
  incompat: number;
  roCompat: number;
}

export function featureFlags(masks: FeatureMasks): FeatureFlags {
  const words = [masks.compat, masks.incompat, masks.roCompat];
  const flags: Partial<Record<keyof FeatureFlags, boolean>> = {};
  for (const [name, [kind, bit]] of Object.entries(FLAG_BITS) as [keyof FeatureFlags, readonly [number, number]][])
    flags[name] = (words[kind]! & bit) !== 0;
  return flags as FeatureFlags;
}

/** Feature names in dumpe2fs order; unknown bits as FEATURE_<C|I|R><bit>. */
export function featureNames(compat: number, incompat: number, roCompat: number): string[] {
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

/**
 * Refuse an external journal device and any incompatible or read-only-compatible feature
 * not understood here. `fail` reports a problem with the byte offset of its field.
 */
export function checkFeaturesUnderstood(
  masks: FeatureMasks,
  has: FeatureFlags,
  fail: (problem: string, field: number) => never,
): void {
  if (has.journalDevice) fail('this is an external journal device, not a filesystem', 0x60);
  const unknownIncompat = masks.incompat & ~UNDERSTOOD_INCOMPAT;
  if (unknownIncompat)
    fail(`unsupported incompatible features: ${featureNames(0, unknownIncompat, 0).join(' ')}`, 0x60);
  const unknownRoCompat = masks.roCompat & ~UNDERSTOOD_RO_COMPAT;
  if (unknownRoCompat)
    fail(`unsupported read-only-compatible features: ${featureNames(0, 0, unknownRoCompat).join(' ')}`, 0x64);
}

/** The type blkid reports: ext3 or ext2 while the features stay within theirs, else ext4. */
export function extType(masks: FeatureMasks, has: FeatureFlags): 'ext2' | 'ext3' | 'ext4' {
  const { incompat, roCompat } = masks;
  const withinExt3 = (incompat & ~EXT3_INCOMPAT) === 0 && (roCompat & ~EXT3_RO_COMPAT) === 0;
  const withinExt2 = (incompat & ~EXT2_INCOMPAT) === 0 && (roCompat & ~EXT3_RO_COMPAT) === 0;
  if (has.hasJournal && withinExt3) return 'ext3';
  if (!has.hasJournal && withinExt2) return 'ext2';
  return 'ext4';
}
