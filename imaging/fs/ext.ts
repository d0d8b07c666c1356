// ext2/ext3/ext4: the superblock and group descriptors, the used-block map from the
// block bitmaps (flex_bg, BLOCK_UNINIT, meta_bg, 64bit, bigalloc) and read-only access
// to the files. The parts live in ./ext/.
import { FormatError } from '../../src/core/errors.js';
import type { FilesystemInfo } from '../../src/format/manifest.js';
import type { BlockReader } from '../block-reader.js';
import { RangeList } from '../ranges.js';
import { checkBlockBitmaps } from './ext/bitmap-check.js';
import { ExtFileTree } from './ext/file-tree.js';
import { readGroupDescriptors } from './ext/group-descriptors.js';
import { journalWarnings } from './ext/journal.js';
import {
  EXT_MAGIC,
  MAGIC_OFFSET,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  STATE_CLEAN,
  STATE_ERRORS,
  formatUuid,
  parseSuperblock,
} from './ext/superblock.js';
import { usedByteRanges } from './ext/used-blocks.js';
import type { ExtVolume } from './ext/volume.js';
import type { CaptureMap, FileTree, FilesystemModule, OpenFilesystem } from './filesystem.js';

class OpenExtFilesystem implements OpenFilesystem {
  readonly method = 'used-blocks' as const;
  private tree: ExtFileTree | undefined;
  private checked: Promise<CaptureMap> | undefined;

  constructor(
    private readonly volume: ExtVolume,
    readonly info: FilesystemInfo,
    readonly warnings: string[],
    /** What the block bitmaps (and the journal's copies of them) mark used. */
    private readonly bitmapUsed: RangeList,
    /** The log of an empty journal: never read again, so captured as zeros. */
    private readonly idleJournal: RangeList,
  ) {}

  async usedRanges(): Promise<RangeList> {
    return this.bitmapUsed.subtract(this.idleJournal);
  }

  captureMap(): Promise<CaptureMap> {
    this.checked ??= checkBlockBitmaps(this.volume, this.bitmapUsed).then((map) =>
      map.method === 'raw' ? map : { ...map, ranges: map.ranges.subtract(this.idleJournal) },
    );
    return this.checked;
  }

  async files(): Promise<FileTree> {
    this.tree ??= new ExtFileTree(this.volume);
    return this.tree;
  }
}

async function open(reader: BlockReader): Promise<OpenFilesystem> {
  if (reader.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE)
    throw new FormatError(`${reader.description}: a ${reader.size}-byte volume is too small for an ext filesystem`);
  try {
    const superblock = parseSuperblock(
      await reader.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE),
      reader.size,
      reader.description,
    );
    const groups = await readGroupDescriptors(reader, superblock);
    const volume: ExtVolume = { reader, superblock, groups };
    const warnings: string[] = [];
    if (superblock.state & STATE_ERRORS) warnings.push('the filesystem is marked as having errors: run e2fsck on it');
    else if (!(superblock.state & STATE_CLEAN) && !superblock.has.hasJournal)
      warnings.push('the filesystem was not cleanly unmounted: run e2fsck on it');
    const journal = await journalWarnings(volume);
    warnings.push(...journal.warnings);
    const bitmapUsed = await usedByteRanges(reader, superblock, groups, { warnings, extraBitmaps: journal.bitmaps });
    const idleJournal = RangeList.of(journal.idle);
    const used = bitmapUsed.subtract(idleJournal);
    const info: FilesystemInfo = {
      type: superblock.type,
      uuid: formatUuid(superblock.uuid),
      label: superblock.label,
      blockSize: superblock.blockSize,
      totalBytes: superblock.blocksCount * superblock.blockSize,
      usedBytes: used.totalBytes,
      features: superblock.features,
    };
    return new OpenExtFilesystem(
      volume,
      info,
      warnings.map((warning) => `${reader.description}: ${warning}`),
      bitmapUsed,
      idleJournal,
    );
  } catch (error) {
    if (error instanceof RangeError)
      throw new FormatError(`${reader.description}: malformed ext metadata (${error.message})`, { cause: error });
    throw error;
  }
}

export const extFilesystem: FilesystemModule = {
  name: 'ext',
  async detect(reader: BlockReader): Promise<boolean> {
    if (reader.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) return false;
    const magic = await reader.read(MAGIC_OFFSET, 2);
    return magic.readUInt16LE(0) === EXT_MAGIC;
  },
  open,
};
