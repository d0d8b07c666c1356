// The contents of one attribute (a file's $DATA, a directory's $INDEX_ALLOCATION,
// an $ATTRIBUTE_LIST...): resident bytes, or the extents of a non-resident attribute
// joined into one runlist, with sparse runs, initialized size and LZNT1 compression.
import type { BlockReader } from '../../block-reader.js';
import { FormatError } from '../../../src/core/errors.js';
import type { Range } from '../../ranges.js';
import { decompressLznt1, Lznt1Error } from './lznt1.js';
import { AttributeFlag, type Attribute } from './mft-record.js';
import { Runlist, type Run } from './runlist.js';

const STANDARD_COMPRESSION_UNIT = 4;

export class AttributeData {
  /** Compressed units decompressed last, for reads smaller than a unit. */
  private unitCache: { index: number; bytes: Buffer } | null = null;

  private constructor(
    private readonly reader: BlockReader,
    readonly label: string,
    /** Logical size in bytes. */
    readonly size: number,
    private readonly flags: number,
    private readonly resident: Buffer | null,
    readonly runlist: Runlist | null,
    private readonly initializedSize: number,
    /** Bytes in a compression unit, 0 when not compressed. */
    private readonly unitSize: number,
  ) {}

  get isResident(): boolean {
    return this.resident !== null;
  }

  get isEncrypted(): boolean {
    return (this.flags & AttributeFlag.encrypted) !== 0;
  }

  /**
   * Join the extents of one attribute (same type and name). `label` names it in
   * errors, e.g. "/dev/sdb1: MFT record 70, $DATA".
   */
  static fromExtents(reader: BlockReader, extents: Attribute[], clusterSize: number, label: string): AttributeData {
    const first = extents[0];
    if (!first) throw new FormatError(`${label}: attribute has no extents`);
    if (first.value) {
      if (extents.length > 1) throw first.location.error(0, 'resident attribute has more than one extent');
      return new AttributeData(
        reader,
        label,
        first.value.length,
        first.flags,
        first.value.bytes,
        null,
        first.value.length,
        0,
      );
    }
    const sorted = [...extents].sort((a, b) => (a.nonResident?.lowestVcn ?? 0) - (b.nonResident?.lowestVcn ?? 0));
    // Sizes, flags and compression are meaningful in the extent that starts at VCN 0.
    const headAttribute = sorted[0]!;
    const head = headAttribute.nonResident;
    if (head?.lowestVcn !== 0)
      throw headAttribute.location.error(16, 'the first extent of a non-resident attribute does not start at VCN 0');
    const runs: Run[] = [];
    let nextVcn = 0;
    for (const extent of sorted) {
      const info = extent.nonResident;
      if (!info) throw extent.location.error(8, 'a resident extent among non-resident ones');
      if (info.lowestVcn !== nextVcn)
        throw extent.location.error(16, `extent starts at VCN ${info.lowestVcn}, expected ${nextVcn}`);
      for (const run of info.runs) runs.push(run);
      const end = info.runs.length
        ? info.runs[info.runs.length - 1]!.vcn + info.runs[info.runs.length - 1]!.length
        : info.lowestVcn;
      nextVcn = Math.max(end, info.highestVcn + 1);
    }
    const flags = headAttribute.flags;
    if (head.dataSize > head.allocatedSize && !(flags & AttributeFlag.compressed)) {
      throw headAttribute.location.error(
        48,
        `data size ${head.dataSize} is larger than the allocated size ${head.allocatedSize}`,
      );
    }
    const compressed = (flags & AttributeFlag.compressed) !== 0 && head.compressionUnit > 0;
    // Windows (and ntfs-3g) only ever compress in units of 16 clusters.
    if (compressed && head.compressionUnit !== STANDARD_COMPRESSION_UNIT) {
      throw headAttribute.location.error(
        34,
        `compression unit of 2^${head.compressionUnit} clusters is not the 16 clusters NTFS uses`,
      );
    }
    const unitSize = compressed ? clusterSize << head.compressionUnit : 0;
    const runlist = new Runlist(runs, clusterSize, label);
    return new AttributeData(reader, label, head.dataSize, flags, null, runlist, head.initializedSize, unitSize);
  }

  /** Up to `length` bytes from `offset`, shorter only at the end. */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(this.size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    if (this.resident) return Buffer.from(this.resident.subarray(offset, end));
    if (this.unitSize > 0) return this.readCompressed(offset, end);
    return this.runlist!.read(this.reader, offset, end - offset, this.initializedSize);
  }

  /**
   * The whole contents of a metadata attribute (attribute list, reparse data...), which
   * cannot legitimately exceed `limit` bytes: a larger size is corruption, not a reason
   * to allocate it.
   */
  async readAll(limit: number): Promise<Buffer> {
    if (this.size > limit)
      throw new FormatError(`${this.label}: size ${this.size} is above the ${limit} bytes such an attribute can have`);
    return this.read(0, this.size);
  }

  /** Byte ranges that hold data (not sparse, not a hole of a compressed file). */
  dataRanges(): Range[] {
    if (this.resident) return this.size > 0 ? [[0, this.size]] : [];
    const runlist = this.runlist!;
    const ranges: Range[] = [];
    const push = (start: number, end: number): void => {
      const clippedEnd = Math.min(end, this.size);
      if (clippedEnd <= start) return;
      const last = ranges[ranges.length - 1] as [number, number] | undefined;
      if (last && start <= last[1]) last[1] = Math.max(last[1], clippedEnd);
      else ranges.push([start, clippedEnd]);
    };
    // In a compressed file a unit with any allocated cluster holds data, all of it.
    const granule = this.unitSize > 0 ? this.unitSize : runlist.clusterSize;
    for (const run of runlist.runs) {
      if (run.lcn === null) continue;
      const start = run.vcn * runlist.clusterSize;
      const end = (run.vcn + run.length) * runlist.clusterSize;
      push(Math.floor(start / granule) * granule, Math.ceil(end / granule) * granule);
    }
    return ranges;
  }

  private async readCompressed(offset: number, end: number): Promise<Buffer> {
    const out = Buffer.alloc(end - offset);
    for (let unit = Math.floor(offset / this.unitSize); unit * this.unitSize < end; unit++) {
      const unitStart = unit * this.unitSize;
      const bytes = await this.readUnit(unit);
      const from = Math.max(offset, unitStart);
      const to = Math.min(end, unitStart + this.unitSize);
      bytes.copy(out, from - offset, from - unitStart, to - unitStart);
    }
    // Bytes past the initialized size read as zeros, as in an uncompressed stream.
    if (this.initializedSize < end) out.fill(0, Math.max(0, this.initializedSize - offset));
    return out;
  }

  /**
   * One compression unit: all clusters sparse = zeros; its last cluster allocated =
   * stored uncompressed; otherwise the allocated clusters before the first sparse one
   * hold LZNT1 data.
   */
  private async readUnit(unit: number): Promise<Buffer> {
    if (this.unitCache?.index === unit) return this.unitCache.bytes;
    const runlist = this.runlist!;
    const clusterSize = runlist.clusterSize;
    const unitClusters = this.unitSize / clusterSize;
    const firstVcn = unit * unitClusters;
    const unitStart = unit * this.unitSize;
    let bytes: Buffer;
    if (!runlist.covers(firstVcn, unitClusters)) {
      throw new FormatError(
        `${this.label}: compression unit ${unit} (byte ${unitStart}) is not fully mapped by its runlist`,
      );
    }
    if (runlist.isSparse(firstVcn)) {
      bytes = Buffer.alloc(this.unitSize);
    } else if (!runlist.isSparse(firstVcn + unitClusters - 1)) {
      bytes = await runlist.read(this.reader, unitStart, this.unitSize, Number.MAX_SAFE_INTEGER);
    } else {
      let allocated = 1;
      while (allocated < unitClusters && !runlist.isSparse(firstVcn + allocated)) allocated++;
      const compressed = await runlist.read(this.reader, unitStart, allocated * clusterSize, Number.MAX_SAFE_INTEGER);
      bytes = Buffer.alloc(this.unitSize);
      try {
        decompressLznt1(compressed, bytes);
      } catch (error) {
        if (error instanceof Lznt1Error)
          throw new FormatError(`${this.label}: compression unit ${unit} (byte ${unitStart}): ${error.message}`);
        throw error;
      }
    }
    this.unitCache = { index: unit, bytes };
    return bytes;
  }
}
