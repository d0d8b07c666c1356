// The fixed index of one volume: a 64-byte header and one 32-byte chunk digest per
// chunk position, all-zero for a hole. It is stored like a chunk (LZ4 frame) and
// named by the BLAKE3 of its uncompressed bytes: the volume's index root digest.
import { DigestMismatchError, FormatError } from '../core/errors.js';
import { DIGEST_BYTES, ZERO_DIGEST, digestOf } from './digest.js';
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './chunk.js';
import { decodeFrame } from './lz4-frame.js';

export const INDEX_MAGIC = Buffer.from('B365FIDX', 'latin1');
export const INDEX_VERSION = 1;
export const INDEX_HEADER_BYTES = 64;
/** 8 TiB at the default 1 MiB chunk; bounds what a server accepts and a client allocates. */
export const MAX_INDEX_ENTRIES = 8 << 20;
export const MAX_INDEX_BYTES = INDEX_HEADER_BYTES + MAX_INDEX_ENTRIES * DIGEST_BYTES;
const ZERO_ENTRY = Buffer.alloc(DIGEST_BYTES);

export class FixedIndex {
  readonly chunkCount: number;
  private readonly entries: Buffer;

  constructor(
    readonly chunkSize: number,
    readonly volumeSize: number,
    entries?: Buffer,
  ) {
    this.chunkCount = Math.ceil(volumeSize / chunkSize);
    if (this.chunkCount > MAX_INDEX_ENTRIES) {
      throw new FormatError(
        `a volume of ${volumeSize} bytes needs ${this.chunkCount} chunks of ${chunkSize} bytes, more than the ${MAX_INDEX_ENTRIES} an index may hold; use a larger chunk size`,
      );
    }
    this.entries = entries ?? Buffer.alloc(this.chunkCount * DIGEST_BYTES);
  }

  /** Length of chunk `position` (the last chunk of a volume may be short). */
  chunkLength(position: number): number {
    return Math.min(this.chunkSize, this.volumeSize - position * this.chunkSize);
  }

  set(position: number, digest: string | null): void {
    this.checkPosition(position);
    const target = this.entries.subarray(position * DIGEST_BYTES, (position + 1) * DIGEST_BYTES);
    if (digest === null || digest === ZERO_DIGEST) ZERO_ENTRY.copy(target);
    else target.write(digest, 'hex');
  }

  /** The digest at `position`, or null for a hole. */
  get(position: number): string | null {
    this.checkPosition(position);
    const entry = this.entries.subarray(position * DIGEST_BYTES, (position + 1) * DIGEST_BYTES);
    return entry.equals(ZERO_ENTRY) ? null : entry.toString('hex');
  }

  isHole(position: number): boolean {
    return this.entries.subarray(position * DIGEST_BYTES, (position + 1) * DIGEST_BYTES).equals(ZERO_ENTRY);
  }

  /** Every distinct non-hole digest, in first-use order. */
  distinctDigests(): string[] {
    const seen = new Set<string>();
    for (let position = 0; position < this.chunkCount; position++) {
      const digest = this.get(position);
      if (digest) seen.add(digest);
    }
    return [...seen];
  }

  holeCount(): number {
    let holes = 0;
    for (let position = 0; position < this.chunkCount; position++) if (this.isHole(position)) holes++;
    return holes;
  }

  encode(): Buffer {
    const header = Buffer.alloc(INDEX_HEADER_BYTES);
    INDEX_MAGIC.copy(header, 0);
    header.writeUInt32LE(INDEX_VERSION, 8);
    header.writeUInt32LE(this.chunkSize, 12);
    header.writeBigUInt64LE(BigInt(this.volumeSize), 16);
    header.writeBigUInt64LE(BigInt(this.chunkCount), 24);
    return Buffer.concat([header, this.entries]);
  }

  /** The index root digest: BLAKE3 of the encoded index. */
  digest(): string {
    return digestOf(this.encode());
  }

  static parse(bytes: Buffer, what = 'index'): FixedIndex {
    if (bytes.length < INDEX_HEADER_BYTES) throw new FormatError(`${what}: truncated header (${bytes.length} bytes)`);
    if (!bytes.subarray(0, 8).equals(INDEX_MAGIC))
      throw new FormatError(`${what}: bad magic, not a Backup365 fixed index`);
    const version = bytes.readUInt32LE(8);
    if (version !== INDEX_VERSION) throw new FormatError(`${what}: unsupported index version ${version}`);
    const chunkSize = bytes.readUInt32LE(12);
    if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE || (chunkSize & (chunkSize - 1)) !== 0) {
      throw new FormatError(`${what}: invalid chunk size ${chunkSize}`);
    }
    const volumeSize = bytes.readBigUInt64LE(16);
    const chunkCount = bytes.readBigUInt64LE(24);
    if (volumeSize > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${what}: volume size out of range`);
    const expectedCount = (volumeSize + BigInt(chunkSize) - 1n) / BigInt(chunkSize);
    if (chunkCount !== expectedCount)
      throw new FormatError(
        `${what}: header says ${chunkCount} chunks, a ${volumeSize}-byte volume has ${expectedCount}`,
      );
    if (chunkCount > BigInt(MAX_INDEX_ENTRIES))
      throw new FormatError(`${what}: ${chunkCount} entries exceed the limit of ${MAX_INDEX_ENTRIES}`);
    if (!bytes.subarray(32, INDEX_HEADER_BYTES).equals(Buffer.alloc(INDEX_HEADER_BYTES - 32))) {
      throw new FormatError(`${what}: reserved header bytes are not zero`);
    }
    const expectedLength = INDEX_HEADER_BYTES + Number(chunkCount) * DIGEST_BYTES;
    if (bytes.length !== expectedLength)
      throw new FormatError(`${what}: ${bytes.length} bytes, expected ${expectedLength} for ${chunkCount} entries`);
    return new FixedIndex(chunkSize, Number(volumeSize), Buffer.from(bytes.subarray(INDEX_HEADER_BYTES)));
  }

  private checkPosition(position: number): void {
    if (!Number.isInteger(position) || position < 0 || position >= this.chunkCount) {
      throw new RangeError(`chunk position ${position} outside 0..${this.chunkCount - 1}`);
    }
  }
}

/** A stored index (its LZ4 frame) decoded, proven to hash to `digest`, and parsed. */
export function decodeIndex(frame: Buffer, digest: string, what = `index ${digest}`): FixedIndex {
  const data = decodeFrame(frame, MAX_INDEX_BYTES, what);
  const actual = digestOf(data);
  if (actual !== digest) throw new DigestMismatchError(digest, actual, what);
  return FixedIndex.parse(data, what);
}
