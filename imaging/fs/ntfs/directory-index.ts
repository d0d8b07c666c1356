// Directory indexes ($I30): the B+tree of $FILE_NAME keys rooted in $INDEX_ROOT, with
// its lower nodes in "INDX" blocks of $INDEX_ALLOCATION. The walk is in key order,
// visits every entry once, and refuses loops and impossible depths.
import { FormatError } from '../../../src/core/errors.js';
import type { AttributeData } from './attribute-data.js';
import { parseFileName, type FileName } from './attributes.js';
import { ByteView } from './byte-view.js';
import { applyFixups, AttributeType } from './mft-record.js';
import type { NtfsInode } from './mft.js';

export interface IndexEntry extends FileName {
  recordNumber: number;
  recordSequence: number;
}

const ENTRY_HAS_CHILD = 0x01;
const ENTRY_IS_LAST = 0x02;
const NODE_HAS_CHILDREN = 0x01;
/** Index allocations up to this size are read in one piece. */
const WHOLE_READ_LIMIT = 8 << 20;
const MAX_DEPTH = 32;

/** Every entry of a directory's $I30 index, in index order (DOS-only names included). */
export async function readDirectoryIndex(inode: NtfsInode): Promise<IndexEntry[]> {
  const roots = inode.extents(AttributeType.indexRoot, '$I30');
  const root = roots[0];
  if (!root) throw new FormatError(`${inode.label}: directory has no $INDEX_ROOT`);
  if (!root.value || roots.length > 1) throw root.location.error(8, '$INDEX_ROOT must be a single resident attribute');
  const rootView = root.value;
  const indexedType = rootView.u32(0);
  if (indexedType !== AttributeType.fileName)
    throw rootView.error(0, `$I30 index root indexes attribute 0x${indexedType.toString(16)}, expected $FILE_NAME`);
  const blockSize = rootView.u32(8, 'index block size');
  const clusterSize = inode.mft.boot.clusterSize;
  const walker = new IndexWalker(inode, blockSize, blockSize >= clusterSize ? clusterSize : 512);
  if (rootView.u8(16 + 12) & NODE_HAS_CHILDREN) {
    if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0)
      throw rootView.error(8, `index block size ${blockSize} is invalid`);
    walker.allocation = inode.data(AttributeType.indexAllocation, '$I30');
    if (!walker.allocation)
      throw new FormatError(`${inode.label}: $INDEX_ROOT has child nodes but the directory has no $INDEX_ALLOCATION`);
    if (walker.allocation.isResident) throw new FormatError(`${inode.label}: $INDEX_ALLOCATION is resident`);
  }
  await walker.walkNode(rootView, 16, 0);
  return walker.entries;
}

class IndexWalker {
  allocation: AttributeData | null = null;
  readonly entries: IndexEntry[] = [];
  private readonly visited = new Set<number>();
  private whole: Buffer | null = null;

  constructor(
    private readonly inode: NtfsInode,
    private readonly blockSize: number,
    private readonly vcnSize: number,
  ) {}

  /** Entries of the node whose INDEX_HEADER is at `headerOffset`, children first. */
  async walkNode(view: ByteView, headerOffset: number, depth: number): Promise<void> {
    if (depth > MAX_DEPTH) throw view.error(headerOffset, `index is deeper than ${MAX_DEPTH} levels`);
    const entriesOffset = view.u32(headerOffset, 'index entries offset');
    const indexLength = view.u32(headerOffset + 4, 'index length');
    const end = headerOffset + indexLength;
    if (indexLength > view.length - headerOffset)
      throw view.error(headerOffset + 4, `index length ${indexLength} runs past the node`);
    let position = headerOffset + entriesOffset;
    if (entriesOffset < 16 || position > end)
      throw view.error(headerOffset, `index entries offset ${entriesOffset} is invalid`);
    while (true) {
      if (position + 16 > end) throw view.error(position, 'index node ends without a last entry');
      const length = view.u16(position + 8, 'index entry length');
      const keyLength = view.u16(position + 10, 'index key length');
      const flags = view.u16(position + 12);
      if (length < 16 || length % 8 !== 0 || position + length > end)
        throw view.error(position + 8, `index entry length ${length} is invalid`);
      if (flags & ENTRY_HAS_CHILD) {
        if (length < 24) throw view.error(position + 8, 'index entry with a child is too short for its VCN');
        await this.walkChild(view.i64(position + length - 8, 'child VCN'), depth + 1);
      }
      if (flags & ENTRY_IS_LAST) break;
      if (16 + keyLength > length)
        throw view.error(position + 10, `index key of ${keyLength} bytes runs past its ${length}-byte entry`);
      const reference = view.u64big(position);
      const key = parseFileName(view.view(position + 16, keyLength, 'index key'));
      this.entries.push({
        ...key,
        recordNumber: Number(reference & 0xffffffffffffn),
        recordSequence: Number(reference >> 48n),
      });
      position += length;
    }
  }

  private async walkChild(vcn: number, depth: number): Promise<void> {
    const allocation = this.allocation;
    const label = `${this.inode.label}, index block at VCN ${vcn}`;
    if (!allocation)
      throw new FormatError(`${label}: entry points to a child node but the directory has no $INDEX_ALLOCATION`);
    const offset = vcn * this.vcnSize;
    if (vcn < 0 || offset % this.blockSize !== 0 || offset + this.blockSize > allocation.size) {
      throw new FormatError(
        `${label}: child node at byte ${offset} is outside the ${allocation.size}-byte $INDEX_ALLOCATION`,
      );
    }
    if (this.visited.has(vcn)) throw new FormatError(`${label}: index node is referenced twice (a loop in the index)`);
    this.visited.add(vcn);
    const view = new ByteView(await this.block(allocation, offset), label, allocation.runlist!.volumeOffsetOf(offset));
    applyFixups(view, 'INDX');
    const ownVcn = view.i64(16, 'index block VCN');
    if (ownVcn !== vcn) throw view.error(16, `index block says it is VCN ${ownVcn}, expected ${vcn}`);
    await this.walkNode(view, 24, depth);
  }

  private async block(allocation: AttributeData, offset: number): Promise<Buffer> {
    if (allocation.size <= WHOLE_READ_LIMIT) {
      this.whole ??= await allocation.readAll(WHOLE_READ_LIMIT);
      return Buffer.from(this.whole.subarray(offset, offset + this.blockSize));
    }
    return allocation.read(offset, this.blockSize);
  }
}
