// A volume inside an image, readable at any offset without restoring it: only the
// chunks a read touches are fetched, kept in a memory-bounded LRU cache by digest,
// and sequential reads fetch the next chunks ahead in parallel.
import { FormatError } from '../src/errors.js';
import type { FixedIndex } from '../src/format/fixed-index.js';
import type { Volume } from '../src/format/manifest.js';
import { checkRange, type BlockReader } from './block-reader.js';

/** Where chunk bytes come from: the repository over HTTP, or the store on the server. */
export interface ChunkSource {
  /** The chunk's bytes, already proven to hash to `digest`. */
  chunk(digest: string, maxSize: number): Promise<Buffer>;
}

export interface ImageVolumeOptions {
  /** Bytes of decompressed chunks kept in memory. */
  cacheBytes?: number;
  /** Chunks fetched ahead of a sequential reader. */
  readAhead?: number;
}

export class ImageVolumeReader implements BlockReader {
  readonly size: number;
  readonly description: string;
  readonly stats = { chunksFetched: 0, bytesFetched: 0 };
  private readonly cache = new Map<string, Buffer>();
  private cachedBytes = 0;
  private readonly inFlight = new Map<string, Promise<Buffer>>();
  private lastEnd = -1;
  private readonly cacheBytes: number;
  private readonly readAhead: number;

  constructor(
    private readonly source: ChunkSource,
    readonly volume: Volume,
    private readonly index: FixedIndex,
    description: string,
    options: ImageVolumeOptions = {},
  ) {
    if (index.volumeSize !== volume.size || index.chunkSize !== volume.chunkSize) throw new FormatError(`${description}: the index does not match the volume`);
    this.size = volume.size;
    this.description = description;
    this.cacheBytes = options.cacheBytes ?? 64 << 20;
    this.readAhead = options.readAhead ?? 6;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length);
    const out = Buffer.alloc(length);
    if (length === 0) return out;
    const chunkSize = this.volume.chunkSize;
    const first = Math.floor(offset / chunkSize);
    const last = Math.floor((offset + length - 1) / chunkSize);
    const sequential = offset === this.lastEnd;
    this.lastEnd = offset + length;
    if (sequential) for (let ahead = last + 1; ahead <= Math.min(this.index.chunkCount - 1, last + this.readAhead); ahead++) void this.chunkAt(ahead).catch(() => undefined);
    const parts = [];
    for (let position = first; position <= last; position++) parts.push(this.chunkAt(position).then((bytes) => ({ position, bytes })));
    for (const { position, bytes } of await Promise.all(parts)) {
      if (!bytes) continue;
      const chunkStart = position * chunkSize;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(offset + length, chunkStart + bytes.length);
      bytes.copy(out, from - offset, from - chunkStart, to - chunkStart);
    }
    return out;
  }

  /** The bytes at a chunk position, or null for a hole (zeros). */
  private chunkAt(position: number): Promise<Buffer | null> {
    const digest = this.index.get(position);
    if (!digest) return Promise.resolve(null);
    const cached = this.cache.get(digest);
    if (cached) {
      this.cache.delete(digest);
      this.cache.set(digest, cached);
      return Promise.resolve(cached);
    }
    let pending = this.inFlight.get(digest);
    if (!pending) {
      pending = this.source.chunk(digest, this.volume.chunkSize).then(
        (bytes) => {
          this.inFlight.delete(digest);
          this.stats.chunksFetched++;
          this.stats.bytesFetched += bytes.length;
          this.remember(digest, bytes);
          return bytes;
        },
        (error: Error) => {
          this.inFlight.delete(digest);
          throw new FormatError(`${this.description}: chunk at byte ${position * this.volume.chunkSize} (${digest}) cannot be read: ${error.message}`, { cause: error });
        },
      );
      this.inFlight.set(digest, pending);
    }
    return pending;
  }

  private remember(digest: string, bytes: Buffer): void {
    this.cache.set(digest, bytes);
    this.cachedBytes += bytes.length;
    while (this.cachedBytes > this.cacheBytes && this.cache.size > 1) {
      const oldest = this.cache.keys().next().value!;
      this.cachedBytes -= this.cache.get(oldest)!.length;
      this.cache.delete(oldest);
    }
  }
}
