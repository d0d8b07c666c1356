// Writes one volume back from the repository: chunks fetched ahead in parallel (bounded),
// each decompressed and proven against its digest before a byte of it is written
// (src/format/chunk-stream.ts), then written while the next ones arrive.
import type { FileHandle } from 'node:fs/promises';
import type { RepositorySource } from '../../src/client/ports.js';
import { CorruptChunkError } from '../../src/core/errors.js';
import { contentDigestOfPieces, volumeChunks, zeroView } from '../../src/format/chunk-stream.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { Volume } from '../../src/format/manifest.js';
import { dataRanges, readFully, writeFully } from '../device.js';

export interface VolumeWriteOptions {
  client: RepositorySource;
  handle: FileHandle;
  /** The target as errors name it (a device path or image file). */
  targetName?: string;
  volume: Volume;
  index: FixedIndex;
  /** Where the volume starts on the target (differs from the source only when moved). */
  targetOffset: number;
  /** Write zeros for holes (needed where the target's old bytes would otherwise remain). */
  writeHoles: boolean;
  parallel?: number;
  onProgress?(bytes: number): void;
  signal?: AbortSignal;
  /** Change bytes before they are written (gaps: table signatures are written last). */
  transform?(targetOffset: number, bytes: Buffer): Buffer;
  /** Told what was written at each chunk position (holes are not reported). */
  onWritten?(position: number, bytes: Buffer): void;
  /** Zero runs of holes on a block device (discard/zeroout), instead of writing zeros. */
  zeroRange?(offset: number, length: number): Promise<void>;
}

export interface VolumeWriteResult {
  bytesWritten: number;
  chunksFetched: number;
  bytesFetched: number;
}

/** Holes are zeroed from one shared buffer, this much at a time. */
const ZERO_WRITE_BYTES = 8 << 20;
/** Chunk writes kept going while the next chunks arrive, so a slow write does not stall the fetches. */
const WRITES_IN_FLIGHT = 4;

export async function writeVolume(options: VolumeWriteOptions): Promise<VolumeWriteResult> {
  const { client, volume, index } = options;
  const result: VolumeWriteResult = { bytesWritten: 0, chunksFetched: 0, bytesFetched: 0 };
  const holes = new HoleRuns(options, result);
  const writes = new WritesInFlight(WRITES_IN_FLIGHT);
  const chunks = volumeChunks(index, (digest) => client.chunkFrame(digest), {
    readAhead: options.parallel ?? 12,
    signal: options.signal,
    describe: (position) => `volume ${volume.id} at byte ${volume.offset + position * volume.chunkSize}`,
    onLoaded: (bytes) => {
      result.chunksFetched++;
      result.bytesFetched += bytes.length;
    },
  });
  try {
    for await (const chunk of chunks) {
      const offset = options.targetOffset + chunk.offset;
      if (chunk.digest === null) {
        if (options.writeHoles) await holes.add(offset, chunk.length);
        options.onProgress?.(chunk.length);
        continue;
      }
      await holes.flush();
      const written = options.transform ? options.transform(offset, chunk.bytes) : chunk.bytes;
      await writes.add(async () => {
        await writeFully(options.handle, written, offset, targetNameOf(options));
        options.onWritten?.(chunk.position, written);
        result.bytesWritten += chunk.length;
        options.onProgress?.(chunk.length);
      });
    }
    await holes.flush();
    await writes.drain();
  } catch (error) {
    // Writes still running finish before the caller may close the handle.
    await writes.settle();
    if (error instanceof CorruptChunkError)
      throw new CorruptChunkError(
        error.digest,
        error.position,
        error.offset,
        `${error.message}; restore stopped before writing it`,
        { cause: error.cause },
      );
    throw error;
  }
  return result;
}

function targetNameOf(options: Pick<VolumeWriteOptions, 'targetName'>): string {
  return options.targetName ?? 'the restore target';
}

/** At most `limit` writes at once; the first that fails stops the next `add`. */
class WritesInFlight {
  private readonly pending = new Set<Promise<void>>();
  private failure: { error: unknown } | null = null;

  constructor(private readonly limit: number) {}

  async add(write: () => Promise<void>): Promise<void> {
    this.throwIfFailed();
    const task: Promise<void> = write()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.pending.delete(task));
    this.pending.add(task);
    while (this.pending.size >= this.limit) await Promise.race(this.pending);
    this.throwIfFailed();
  }

  async drain(): Promise<void> {
    await this.settle();
    this.throwIfFailed();
  }

  async settle(): Promise<void> {
    await Promise.allSettled(this.pending);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}

/** Holes come in runs; a run is zeroed in one go when the target must hold zeros there. */
class HoleRuns {
  private run: { offset: number; length: number } | null = null;

  constructor(
    private readonly options: Pick<VolumeWriteOptions, 'handle' | 'zeroRange' | 'targetName'>,
    private readonly result: VolumeWriteResult,
  ) {}

  async add(offset: number, length: number): Promise<void> {
    if (this.run && this.run.offset + this.run.length === offset) this.run.length += length;
    else {
      await this.flush();
      this.run = { offset, length };
    }
  }

  async flush(): Promise<void> {
    if (!this.run) return;
    const run = this.run;
    this.run = null;
    if (this.options.zeroRange) await this.options.zeroRange(run.offset, run.length);
    else
      for (let done = 0; done < run.length; done += ZERO_WRITE_BYTES)
        await writeFully(
          this.options.handle,
          zeroView(Math.min(ZERO_WRITE_BYTES, run.length - done)),
          run.offset + done,
          targetNameOf(this.options),
        );
    this.result.bytesWritten += run.length;
  }
}

/** Re-read a written volume and compute its BLAKE3 content digest. */
export async function contentDigestOf(
  handle: FileHandle,
  kind: 'file' | 'block-device',
  offset: number,
  size: number,
  onProgress?: (bytes: number) => void,
): Promise<string> {
  return contentDigestOfPieces(readBack(handle, kind, offset, size), (piece) => onProgress?.(piece.bytes.length));
}

/**
 * The bytes of a written volume in 4 MiB pieces, each valid until the next is asked for;
 * the holes of a sparse file are not read but given as zeros.
 */
async function* readBack(
  handle: FileHandle,
  kind: 'file' | 'block-device',
  offset: number,
  size: number,
): AsyncGenerator<{ bytes: Buffer }> {
  const buffer = Buffer.allocUnsafe(4 << 20);
  const cursor = dataRanges(handle.fd, kind, offset, offset + size).cursor();
  for (let position = 0; position < size; position += buffer.length) {
    const length = Math.min(buffer.length, size - position);
    const spans = cursor.within(offset + position, offset + position + length);
    if (spans.length === 0) {
      yield { bytes: zeroView(length) };
      continue;
    }
    const view = buffer.subarray(0, length);
    if (!(spans.length === 1 && spans[0]![0] === 0 && spans[0]![1] === length)) view.fill(0);
    for (const [start, end] of spans)
      await readFully(handle, view, start, end - start, offset + position + start, 'verification read');
    yield { bytes: view };
  }
}
