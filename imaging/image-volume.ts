// A volume inside an image, readable at any offset without restoring it: only the
// chunks a read touches are fetched, kept in a memory-bounded LRU cache by digest
// (src/format/chunk-stream.ts), and sequential reads fetch the next chunks ahead.
import { FormatError } from '../src/core/errors.js';
import { ChunkReader } from '../src/format/chunk-stream.js';
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
  private readonly chunks: ChunkReader;
  private lastEnd = -1;
  private readonly readAhead: number;

  constructor(
    source: ChunkSource,
    readonly volume: Volume,
    private readonly index: FixedIndex,
    description: string,
    options: ImageVolumeOptions = {},
  ) {
    if (index.volumeSize !== volume.size || index.chunkSize !== volume.chunkSize)
      throw new FormatError(`${description}: the index does not match the volume`);
    this.size = volume.size;
    this.description = description;
    this.readAhead = options.readAhead ?? 6;
    this.chunks = new ChunkReader(index, (digest) => source.chunk(digest, volume.chunkSize), {
      cacheBytes: options.cacheBytes ?? 64 << 20,
      reportError: (error, position, digest) =>
        new FormatError(
          `${description}: chunk at byte ${position * volume.chunkSize} (${digest}) cannot be read: ${(error as Error).message}`,
          { cause: error },
        ),
    });
  }

  get stats(): { chunksFetched: number; bytesFetched: number } {
    return this.chunks.stats;
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
    if (sequential)
      for (let ahead = last + 1; ahead <= Math.min(this.index.chunkCount - 1, last + this.readAhead); ahead++)
        void this.chunks.chunkAt(ahead).catch(() => undefined);
    const parts = [];
    for (let position = first; position <= last; position++)
      parts.push(this.chunks.chunkAt(position).then((bytes) => ({ position, bytes })));
    for (const { position, bytes } of await Promise.all(parts)) {
      if (!bytes) continue;
      const chunkStart = position * chunkSize;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(offset + length, chunkStart + bytes.length);
      bytes.copy(out, from - offset, from - chunkStart, to - chunkStart);
    }
    return out;
  }
}
