// A volume's chunks read back from wherever they are stored: each fetched once, decoded
// and proven against its digest before anyone sees a byte of it. Restore, verification
// (client and server) and file access all walk volumes through this one module.
import { CorruptChunkError, FormatError, UserError } from '../core/errors.js';
import { decodeChunk } from './chunk.js';
import { ContentHasher } from './digest.js';
import type { FixedIndex } from './fixed-index.js';

/** A stored chunk's LZ4 frame, as the repository keeps it. */
export type FetchFrame = (digest: string, signal: AbortSignal) => Promise<Buffer>;
/** A chunk's bytes, already proven to hash to `digest`. */
export type LoadChunk = (digest: string, signal: AbortSignal) => Promise<Buffer>;

export interface VolumeChunk {
  position: number;
  /** Byte offset of the chunk inside its volume. */
  offset: number;
  length: number;
  /** The chunk's digest, null for a hole. */
  digest: string | null;
  /** The chunk's bytes; for a hole a view of shared zeros, to read and never to modify. */
  bytes: Buffer;
}

let sharedZeros = Buffer.alloc(0);

/** `length` zero bytes without allocating them each time: a view of one shared zero buffer. */
export function zeroView(length: number): Buffer {
  if (sharedZeros.length < length) sharedZeros = Buffer.alloc(Math.max(length, 1 << 20));
  return sharedZeros.subarray(0, length);
}

/**
 * Decoded chunks by digest, least recently used dropped first once they hold more than
 * `maxBytes`; a chunk being loaded is loaded once however many ask for it meanwhile.
 */
export class ChunkCache {
  private readonly entries = new Map<string, Buffer>();
  private readonly loading = new Map<string, Promise<Buffer>>();
  private held = 0;

  constructor(readonly maxBytes: number) {}

  /** Bytes of chunks held now (never more than maxBytes). */
  get bytes(): number {
    return this.held;
  }

  has(digest: string): boolean {
    return this.entries.has(digest);
  }

  get(digest: string, load: () => Promise<Buffer>): Promise<Buffer> {
    const cached = this.entries.get(digest);
    if (cached) {
      this.entries.delete(digest);
      this.entries.set(digest, cached);
      return Promise.resolve(cached);
    }
    let pending = this.loading.get(digest);
    if (!pending) {
      pending = load().then(
        (bytes) => {
          this.loading.delete(digest);
          this.remember(digest, bytes);
          return bytes;
        },
        (error: unknown) => {
          this.loading.delete(digest);
          throw error;
        },
      );
      this.loading.set(digest, pending);
    }
    return pending;
  }

  private remember(digest: string, bytes: Buffer): void {
    if (bytes.length > this.maxBytes) return;
    this.entries.set(digest, bytes);
    this.held += bytes.length;
    while (this.held > this.maxBytes) {
      const [oldest, evicted] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      this.held -= evicted.length;
    }
  }
}

/** Turns a failure to get the chunk at `position` into the error its reader sees. */
export type ChunkErrorReport = (error: unknown, position: number, digest: string) => unknown;

export interface ChunkReaderOptions {
  /** Bytes of decoded chunks kept for chunks used again; 0 keeps none. */
  cacheBytes?: number;
  /** Where chunk `position` is, for error messages ("volume p1 at byte 1048576"). */
  describe?(position: number): string;
  /** Told of every chunk actually loaded (not of those served from the cache). */
  onLoaded?(bytes: Buffer): void;
  /** Handed to every load, so stopping a reader stops its fetches too. */
  signal?: AbortSignal;
  /** How a failed chunk is reported; by default a corrupt one is a CorruptChunkError naming where it is. */
  reportError?: ChunkErrorReport;
}

/** Random access to a volume's chunks: any position, each loaded once, repeats served from the cache. */
export class ChunkReader {
  readonly stats = { chunksFetched: 0, bytesFetched: 0 };
  private readonly cache: ChunkCache;
  private readonly signal: AbortSignal;
  private readonly describe: (position: number) => string;
  private readonly reportError: ChunkErrorReport;

  constructor(
    readonly index: FixedIndex,
    private readonly load: LoadChunk,
    private readonly options: ChunkReaderOptions = {},
  ) {
    this.cache = new ChunkCache(options.cacheBytes ?? 0);
    this.signal = options.signal ?? new AbortController().signal;
    this.describe = options.describe ?? ((position) => `chunk ${position} at byte ${position * index.chunkSize}`);
    this.reportError =
      options.reportError ??
      ((error, position, digest) =>
        locatedError(error, this.describe(position), digest, position, position * index.chunkSize));
  }

  /** The bytes of chunk `position`, or null for a hole (zeros). */
  async chunkAt(position: number): Promise<Buffer | null> {
    const digest = this.index.get(position);
    if (!digest) return null;
    let bytes: Buffer;
    try {
      bytes = await this.cache.get(digest, () => this.loadCounted(digest));
    } catch (error) {
      if (this.signal.aborted) throw this.signal.reason;
      throw this.reportError(error, position, digest);
    }
    const expected = this.index.chunkLength(position);
    if (bytes.length !== expected)
      throw new FormatError(
        `${this.describe(position)}: chunk ${digest} holds ${bytes.length} bytes, the index expects ${expected}`,
      );
    return bytes;
  }

  private async loadCounted(digest: string): Promise<Buffer> {
    const bytes = await this.load(digest, this.signal);
    this.stats.chunksFetched++;
    this.stats.bytesFetched += bytes.length;
    this.options.onLoaded?.(bytes);
    return bytes;
  }
}

/** A failed chunk named by where it is; its class (and so its exit code) kept. */
function locatedError(error: unknown, where: string, digest: string, position: number, offset: number): unknown {
  if (error instanceof CorruptChunkError) return error;
  if (error instanceof FormatError)
    return new CorruptChunkError(digest, position, offset, `${where}: chunk ${digest} is corrupt (${error.message})`, {
      cause: error,
    });
  if (error instanceof UserError)
    return new (error.constructor as typeof UserError)(`${where}: ${error.message}`, {
      cause: error,
      details: error.details ?? {},
    });
  return error;
}

/** Loads chunks as stored frames and decodes each, proving it hashes to its name. */
export function frameLoader(fetchFrame: FetchFrame, maxChunkSize: number): LoadChunk {
  return async (digest, signal) => decodeChunk(await fetchFrame(digest, signal), digest, maxChunkSize);
}

export interface ChunkStreamOptions extends Omit<ChunkReaderOptions, 'signal'> {
  /** Chunks fetched ahead of the one being consumed, in parallel. */
  readAhead?: number;
  /** Stops the walk and every fetch in flight; the walk then throws the signal's reason. */
  signal?: AbortSignal;
}

/** Read-ahead when a caller does not choose: enough to hide a round trip per chunk. */
export const DEFAULT_READ_AHEAD = 8;
/** A sequential walk keeps this many recent chunks, for the runs of repeated chunks volumes have. */
const SEQUENTIAL_CACHE_CHUNKS = 8;

/**
 * Every chunk of a volume, in order: holes as zeros, the rest fetched as frames up to
 * `readAhead` at a time, decoded and verified. Stopping early (break, an error, the
 * signal) cancels the fetches still in flight and waits for those that ignore the
 * cancel, so nothing the walk started outlives it.
 */
export async function* volumeChunks(
  index: FixedIndex,
  fetchFrame: FetchFrame,
  options: ChunkStreamOptions = {},
): AsyncGenerator<VolumeChunk> {
  const stop = new AbortController();
  const outer = options.signal;
  const forward = () => stop.abort(outer!.reason);
  outer?.addEventListener('abort', forward, { once: true });
  const ahead = new Map<number, Promise<Buffer | null>>();
  try {
    outer?.throwIfAborted();
    const cacheBytes = options.cacheBytes ?? SEQUENTIAL_CACHE_CHUNKS * index.chunkSize;
    const reader = new ChunkReader(index, frameLoader(fetchFrame, index.chunkSize), {
      ...options,
      cacheBytes,
      signal: stop.signal,
    });
    yield* inOrder(reader, Math.max(1, options.readAhead ?? DEFAULT_READ_AHEAD), stop.signal, ahead);
  } finally {
    stop.abort(new Error('chunk walk stopped'));
    outer?.removeEventListener('abort', forward);
    await Promise.allSettled(ahead.values());
  }
}

/** The walk itself; `ahead` holds the chunks asked for and not yet handed out. */
async function* inOrder(
  reader: ChunkReader,
  readAhead: number,
  signal: AbortSignal,
  ahead: Map<number, Promise<Buffer | null>>,
): AsyncGenerator<VolumeChunk> {
  const { index } = reader;
  let started = 0;
  for (let position = 0; position < index.chunkCount; position++) {
    signal.throwIfAborted();
    // Holes take no slot: keep `readAhead` real fetches going past any run of them.
    for (; started < index.chunkCount && ahead.size < readAhead; started++) {
      if (index.isHole(started)) continue;
      const pending = reader.chunkAt(started);
      // Awaited in order below; a failure ahead must not go unhandled meanwhile.
      pending.catch(() => undefined);
      ahead.set(started, pending);
    }
    const offset = position * index.chunkSize;
    const length = index.chunkLength(position);
    const pending = ahead.get(position);
    if (!pending) {
      yield { position, offset, length, digest: null, bytes: zeroView(length) };
      continue;
    }
    const bytes = (await untilAborted(pending, signal))!;
    ahead.delete(position);
    yield { position, offset, length, digest: index.get(position), bytes };
  }
}

/** `promise`, or the signal's reason as soon as it is aborted, whichever comes first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** The BLAKE3 content digest of a volume given as its pieces in order (DESIGN.md decision 4). */
export async function contentDigestOfPieces<Piece extends { bytes: Buffer }>(
  pieces: AsyncIterable<Piece>,
  onPiece?: (piece: Piece) => void,
): Promise<string> {
  const hasher = new ContentHasher();
  for await (const piece of pieces) {
    hasher.update(piece.bytes);
    onPiece?.(piece);
  }
  return hasher.digest();
}
