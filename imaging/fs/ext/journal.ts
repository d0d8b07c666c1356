// The journal (jbd2) of a filesystem that was in use or not cleanly unmounted: committed
// transactions not yet written in place may hold newer copies of block bitmaps, whose
// allocations the used-block map must keep, or replaying them after a restore would
// point files at blocks that were captured as zeros.
import { FormatError } from '../../../src/core/errors.js';
import { fileBlockMap, findRun, type FileExtent } from './block-map.js';
import { InodeTable } from './inode.js';
import type { ExtVolume } from './volume.js';

const JBD2_MAGIC = 0xc03b3998;
const BLOCK_DESCRIPTOR = 1;
const BLOCK_COMMIT = 2;
const BLOCK_SUPERBLOCK_V1 = 3;
const BLOCK_SUPERBLOCK_V2 = 4;
const BLOCK_REVOKE = 5;
const INCOMPAT_64BIT = 0x2;
const INCOMPAT_CSUM_V2 = 0x8;
const INCOMPAT_CSUM_V3 = 0x10;
const INCOMPAT_FAST_COMMIT = 0x20;
const DEFAULT_FAST_COMMIT_BLOCKS = 256;
const FLAG_ESCAPE = 1;
const FLAG_SAME_UUID = 2;
const FLAG_LAST_TAG = 8;
const HEADER_SIZE = 12;

export interface JournalFindings {
  warnings: string[];
  /** Committed journal copies of block bitmaps, by the block they will be written to. */
  bitmaps: Map<number, Buffer[]>;
  /**
   * Byte ranges of an empty journal's log (everything but its superblock): a cleanly
   * unmounted filesystem never reads them again, so they are captured as zeros, and a
   * busy journal does not make every nightly image larger.
   */
  idle: [number, number][];
}

interface LoggedBlock {
  target: number;
  position: number;
  escaped: boolean;
}

export async function journalWarnings(volume: ExtVolume): Promise<JournalFindings> {
  const { superblock } = volume;
  if (!superblock.has.hasJournal) return { warnings: [], bitmaps: new Map(), idle: [] };
  if (superblock.journalInode === 0) {
    const warnings = superblock.has.needsRecovery
      ? [
          'the external journal needs recovery and was not examined: blocks its transactions allocate may be missing from the used-block map',
        ]
      : [];
    return { warnings, bitmaps: new Map(), idle: [] };
  }
  try {
    return await examineJournal(volume);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    // Without replay the journal does not matter; with it, a map that ignored it could lose data.
    if (superblock.has.needsRecovery)
      throw new FormatError(
        `${volume.reader.description}: the journal needs recovery but cannot be read: ${error.message}`,
        { cause: error },
      );
    return {
      warnings: [
        `the journal cannot be read (${error.message}); the filesystem does not need recovery, so this does not affect the image`,
      ],
      bitmaps: new Map(),
      idle: [],
    };
  }
}

/** The journal inode's blocks, read by their position in the journal. */
class JournalFile {
  private constructor(
    private readonly volume: ExtVolume,
    readonly runs: FileExtent[],
    /** Whole blocks of the journal inode. */
    readonly blocks: number,
  ) {}

  static async open(volume: ExtVolume): Promise<JournalFile> {
    const journal = await new InodeTable(volume).read(volume.superblock.journalInode);
    const runs = await fileBlockMap(volume, journal);
    return new JournalFile(volume, runs, Math.floor(journal.size / volume.superblock.blockSize));
  }

  /** The block at `position`, or null where the journal has a hole or an unwritten extent. */
  async block(position: number): Promise<Buffer | null> {
    const { blockSize } = this.volume.superblock;
    const run = this.runs[findRun(this.runs, position)];
    if (!run || run.logical > position || !run.initialized) return null;
    return this.volume.reader.read((run.physical + position - run.logical) * blockSize, blockSize);
  }

  /** Byte ranges of every block but the journal superblock. */
  logRanges(): [number, number][] {
    const { blockSize } = this.volume.superblock;
    const ranges: [number, number][] = [];
    for (const run of this.runs) {
      const from = Math.max(run.logical, 1);
      if (from >= run.logical + run.length) continue;
      ranges.push([(run.physical + from - run.logical) * blockSize, (run.physical + run.length) * blockSize]);
    }
    return ranges;
  }
}

/** What the journal superblock says about where the log lies and how its tags are laid out. */
interface LogLayout {
  /** First block of the log, and the first block past it (the log wraps there). */
  first: number;
  maxLength: number;
  start: number;
  sequence: number;
  fastCommitBlocks: number;
  tagSize: number;
  tailSize: number;
  csumV3: boolean;
  wide: boolean;
}

async function readJournalSuperblock(file: JournalFile, volume: ExtVolume): Promise<Buffer> {
  const { superblock } = volume;
  const { blockSize } = superblock;
  const header = await file.block(0);
  if (!header || header.readUInt32BE(0) !== JBD2_MAGIC)
    throw new FormatError(`the journal (inode ${superblock.journalInode}) has no valid superblock`);
  const type = header.readUInt32BE(4);
  if (type !== BLOCK_SUPERBLOCK_V1 && type !== BLOCK_SUPERBLOCK_V2)
    throw new FormatError(`the journal superblock has unknown type ${type}`);
  if (header.readUInt32BE(0x0c) !== blockSize)
    throw new FormatError(`the journal's block size ${header.readUInt32BE(0x0c)} is not the filesystem's ${blockSize}`);
  return header;
}

/** The layout of a journal whose log is not empty (its start is not 0). */
function logLayout(header: Buffer, journalBlocks: number): LogLayout {
  const first = header.readUInt32BE(0x14);
  const start = header.readUInt32BE(0x1c);
  const incompat = header.readUInt32BE(4) === BLOCK_SUPERBLOCK_V2 ? header.readUInt32BE(0x28) : 0;
  // Fast-commit blocks follow the log proper: the log wraps before them.
  const fastCommitBlocks =
    incompat & INCOMPAT_FAST_COMMIT ? header.readUInt32BE(0x54) || DEFAULT_FAST_COMMIT_BLOCKS : 0;
  const maxLength = Math.min(header.readUInt32BE(0x10), journalBlocks) - fastCommitBlocks;
  if (first < 1 || first >= maxLength || start < first || start >= maxLength) {
    throw new FormatError(`journal superblock: log start ${start} is outside blocks ${first}-${maxLength - 1}`);
  }
  const csumV3 = (incompat & INCOMPAT_CSUM_V3) !== 0;
  const csumV2 = (incompat & INCOMPAT_CSUM_V2) !== 0;
  const wide = (incompat & INCOMPAT_64BIT) !== 0;
  return {
    first,
    maxLength,
    start,
    sequence: header.readUInt32BE(0x18),
    fastCommitBlocks,
    tagSize: csumV3 ? 16 : 8 + (wide ? 4 : 0) + (csumV2 ? 2 : 0),
    tailSize: csumV2 || csumV3 ? 4 : 0,
    csumV3,
    wide,
  };
}

/** The blocks a descriptor block announces, at the log positions that follow it. */
function descriptorTags(block: Buffer, position: number, layout: LogLayout, wrap: (at: number) => number) {
  const tags: LoggedBlock[] = [];
  const { tagSize, csumV3, wide } = layout;
  let dataPosition = wrap(position + 1);
  for (let at = HEADER_SIZE; at + tagSize <= block.length - layout.tailSize; ) {
    const low = block.readUInt32BE(at);
    const flags = csumV3 ? block.readUInt32BE(at + 4) : block.readUInt16BE(at + 6);
    const high = wide ? block.readUInt32BE(at + 8) : 0;
    tags.push({ target: high * 0x1_0000_0000 + low, position: dataPosition, escaped: (flags & FLAG_ESCAPE) !== 0 });
    dataPosition = wrap(dataPosition + 1);
    at += tagSize + (flags & FLAG_SAME_UUID ? 0 : 16);
    if (flags & FLAG_LAST_TAG) break;
  }
  return { tags, next: dataPosition };
}

/** Walk the log from its start: the blocks of every committed transaction, and how many there are. */
async function committedBlocks(file: JournalFile, layout: LogLayout) {
  const { first, maxLength } = layout;
  const wrap = (position: number) => (position >= maxLength ? first + (position - maxLength) : position);
  let position = layout.start;
  let sequence = layout.sequence;
  let pending: LoggedBlock[] = [];
  const committed: LoggedBlock[] = [];
  let transactions = 0;
  // The log can hold at most maxLength blocks: a longer walk means a loop.
  for (let visited = 0; visited < maxLength; visited++) {
    const block = await file.block(position);
    if (!block || block.readUInt32BE(0) !== JBD2_MAGIC || block.readUInt32BE(8) !== sequence) break;
    const blockType = block.readUInt32BE(4);
    if (blockType === BLOCK_DESCRIPTOR) {
      const { tags, next } = descriptorTags(block, position, layout, wrap);
      pending.push(...tags);
      position = next;
      visited += tags.length;
      continue;
    }
    if (blockType === BLOCK_COMMIT) {
      committed.push(...pending);
      pending = [];
      transactions++;
      sequence = (sequence + 1) >>> 0;
    } else if (blockType !== BLOCK_REVOKE) {
      break;
    }
    position = wrap(position + 1);
  }
  return { committed, transactions };
}

/** The journal's copies of block bitmaps, by the bitmap block they will be written over. */
async function loggedBitmaps(file: JournalFile, volume: ExtVolume, committed: LoggedBlock[]) {
  const { superblock, groups } = volume;
  const bitmapBlocks = new Set<number>();
  for (let group = 0; group < groups.count; group++) bitmapBlocks.add(groups.blockBitmap[group]!);
  const bitmapBytes = superblock.clustersPerGroup / 8;
  const bitmaps = new Map<number, Buffer[]>();
  for (const logged of committed) {
    if (!bitmapBlocks.has(logged.target)) continue;
    const data = await file.block(logged.position);
    if (!data) continue;
    const copy = Buffer.from(data.subarray(0, bitmapBytes));
    if (logged.escaped) copy.writeUInt32BE(JBD2_MAGIC, 0);
    const list = bitmaps.get(logged.target) ?? [];
    list.push(copy);
    bitmaps.set(logged.target, list);
  }
  return bitmaps;
}

async function examineJournal(volume: ExtVolume): Promise<JournalFindings> {
  const findings: JournalFindings = { warnings: [], bitmaps: new Map(), idle: [] };
  const file = await JournalFile.open(volume);
  const header = await readJournalSuperblock(file, volume);
  if (header.readUInt32BE(0x1c) === 0) {
    if (!volume.superblock.has.needsRecovery) findings.idle = file.logRanges();
    return findings;
  }
  const layout = logLayout(header, file.blocks);
  const { committed, transactions } = await committedBlocks(file, layout);
  if (transactions === 0) return findings;
  findings.bitmaps = await loggedBitmaps(file, volume, committed);
  findings.warnings.push(
    `the journal holds ${transactions} committed transaction${transactions === 1 ? '' : 's'} not yet written in place (the filesystem was in use or not cleanly unmounted); ` +
      `blocks they allocate are kept, and mounting or checking the restored filesystem replays them`,
  );
  if (layout.fastCommitBlocks > 0)
    findings.warnings.push(
      'fast-commit journal blocks were not examined: blocks they allocate may be missing from the used-block map',
    );
  return findings;
}
