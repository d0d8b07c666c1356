// Runlists ("mapping pairs") of non-resident attributes: which clusters hold which
// virtual clusters of a stream. Runs are decoded once and read in as few large
// device reads as the layout allows; sparse runs and bytes past the initialized
// size read as zeros.
import type { BlockReader } from '../../block-reader.js';
import { FormatError } from '../../../src/core/errors.js';
import type { ByteView } from './byte-view.js';

export interface Run {
  /** First virtual cluster of the run within the stream. */
  vcn: number;
  length: number;
  /** First cluster on the volume, or null for a sparse run (reads as zeros). */
  lcn: number | null;
}

/**
 * Decode the mapping pairs at [offset, end) of an attribute: each pair is a header
 * byte (low nibble: size of the length, high nibble: size of the LCN delta), the
 * length, and an LCN delta signed against the previous run; no delta = sparse.
 */
export function decodeRunlist(
  view: ByteView,
  offset: number,
  end: number,
  firstVcn: number,
  clusterCount: number,
): Run[] {
  const runs: Run[] = [];
  let vcn = firstVcn;
  let lcn = 0;
  let position = offset;
  while (position < end) {
    const header = view.u8(position, 'runlist header');
    if (header === 0) break;
    const lengthSize = header & 0x0f;
    const deltaSize = header >> 4;
    if (lengthSize === 0 || lengthSize > 8 || deltaSize > 8)
      throw view.error(position, `runlist header byte 0x${header.toString(16)} is invalid`);
    if (position + 1 + lengthSize + deltaSize > end)
      throw view.error(position, 'runlist entry runs past the end of the attribute');
    const length = view.intN(position + 1, lengthSize, 'run length');
    if (length <= 0) throw view.error(position + 1, `run length ${length} is not positive`);
    let runLcn: number | null = null;
    if (deltaSize > 0) {
      lcn += view.intN(position + 1 + lengthSize, deltaSize, 'run LCN delta');
      if (lcn < 0 || lcn + length > clusterCount) {
        throw view.error(
          position,
          `run of ${length} clusters at cluster ${lcn} is outside the volume's ${clusterCount} clusters`,
        );
      }
      runLcn = lcn;
    }
    runs.push({ vcn, length, lcn: runLcn });
    vcn += length;
    if (!Number.isSafeInteger(vcn)) throw view.error(position, 'runlist VCNs overflow');
    position += 1 + lengthSize + deltaSize;
  }
  return runs;
}

/** The clusters of one stream, possibly gathered from several attribute extents. */
export class Runlist {
  constructor(
    readonly runs: readonly Run[],
    readonly clusterSize: number,
    /** What the stream is, for error messages. */
    readonly label: string,
  ) {}

  /** Index of the run holding `vcn`, or -1. */
  private find(vcn: number): number {
    let low = 0;
    let high = this.runs.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const run = this.runs[middle]!;
      if (vcn < run.vcn) high = middle - 1;
      else if (vcn >= run.vcn + run.length) low = middle + 1;
      else return middle;
    }
    return -1;
  }

  /** Volume byte offset of stream byte `offset`, when it is allocated. */
  volumeOffsetOf(offset: number): number | null {
    const vcn = Math.floor(offset / this.clusterSize);
    const index = this.find(vcn);
    const run = index < 0 ? undefined : this.runs[index];
    if (!run || run.lcn === null) return null;
    return (run.lcn + vcn - run.vcn) * this.clusterSize + (offset % this.clusterSize);
  }

  /** True when the whole cluster `vcn` is sparse (or unmapped). */
  isSparse(vcn: number): boolean {
    const index = this.find(vcn);
    return index < 0 || this.runs[index]!.lcn === null;
  }

  /** Whether the clusters [vcn, vcn + count) are all mapped by some run (data or sparse). */
  covers(vcn: number, count: number): boolean {
    let position = vcn;
    let index = this.find(position);
    while (position < vcn + count) {
      if (index < 0 || index >= this.runs.length) return false;
      const run = this.runs[index]!;
      if (position < run.vcn || position >= run.vcn + run.length) return false;
      position = run.vcn + run.length;
      index++;
    }
    return true;
  }

  /**
   * `length` bytes of the stream from `offset`; bytes at or past `validBytes` (the
   * initialized size) and sparse runs read as zeros. Clusters not mapped by any run
   * are a FormatError: the stream claims bytes its runlist does not place.
   */
  async read(reader: BlockReader, offset: number, length: number, validBytes: number): Promise<Buffer> {
    const end = Math.min(offset + length, validBytes);
    let out: Buffer | null = null;
    let position = offset;
    let index = this.find(Math.floor(position / this.clusterSize));
    while (position < end) {
      const vcn = Math.floor(position / this.clusterSize);
      const run = index >= 0 ? this.runs[index] : undefined;
      if (!run || vcn < run.vcn || vcn >= run.vcn + run.length) {
        index = this.find(vcn);
        if (index < 0)
          throw new FormatError(`${this.label}: byte ${position} (cluster ${vcn}) is not mapped by its runlist`);
        continue;
      }
      const runEnd = Math.min(end, (run.vcn + run.length) * this.clusterSize);
      if (run.lcn !== null) {
        const deviceOffset = run.lcn * this.clusterSize + (position - run.vcn * this.clusterSize);
        // One contiguous piece that is the whole answer needs no second buffer.
        if (position === offset && runEnd === offset + length) return reader.read(deviceOffset, length);
        const piece = await reader.read(deviceOffset, runEnd - position);
        out ??= Buffer.alloc(length);
        piece.copy(out, position - offset);
      }
      position = runEnd;
      index++;
    }
    return out ?? Buffer.alloc(length);
  }
}
