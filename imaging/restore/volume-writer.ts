// Writes one volume back from the repository: chunks fetched in parallel (bounded),
// each decompressed and proven against its digest before a byte of it is written.
import type { FileHandle } from 'node:fs/promises';
import type { RepositoryClient } from '../../src/client/repository.js';
import { FormatError, UserError } from '../../src/errors.js';
import { ContentHasher } from '../../src/format/digest.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { Volume } from '../../src/format/manifest.js';
import { dataRanges, readFully, writeFully } from '../device.js';

export interface VolumeWriteOptions {
  client: RepositoryClient;
  handle: FileHandle;
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

const zeros = Buffer.alloc(8 << 20);

export async function writeVolume(options: VolumeWriteOptions): Promise<VolumeWriteResult> {
  const { client, handle, volume, index } = options;
  const parallel = options.parallel ?? 12;
  const result: VolumeWriteResult = { bytesWritten: 0, chunksFetched: 0, bytesFetched: 0 };
  const recent = new Map<string, Buffer>();
  const inFlight = new Set<Promise<void>>();
  let failure: Error | null = null;

  const fetchAndWrite = async (position: number, digest: string): Promise<void> => {
    const where = `volume ${volume.id} at byte ${volume.offset + position * volume.chunkSize}`;
    let bytes = recent.get(digest);
    if (!bytes) {
      try {
        bytes = await client.chunk(digest, volume.chunkSize);
      } catch (error) {
        if (error instanceof FormatError) throw new FormatError(`${where}: chunk ${digest} is corrupt (${error.message}); restore stopped before writing it`, { cause: error });
        if (error instanceof UserError) throw new (error.constructor as typeof UserError)(`${where}: ${error.message}`, { cause: error, details: error.details ?? {} });
        throw error;
      }
      result.chunksFetched++;
      result.bytesFetched += bytes.length;
      recent.set(digest, bytes);
      if (recent.size > 8) recent.delete(recent.keys().next().value!);
    }
    if (bytes.length !== index.chunkLength(position)) throw new FormatError(`${where}: chunk ${digest} holds ${bytes.length} bytes, the index expects ${index.chunkLength(position)}`);
    const offset = options.targetOffset + position * volume.chunkSize;
    const written = options.transform ? options.transform(offset, bytes) : bytes;
    await writeFully(options.handle, written, offset);
    options.onWritten?.(position, written);
    result.bytesWritten += bytes.length;
    options.onProgress?.(bytes.length);
  };

  // Holes come in runs; a run is zeroed in one go when the target must hold zeros there.
  let holeRun: { offset: number; length: number } | null = null;
  const flushHoles = async () => {
    if (!holeRun) return;
    const run = holeRun;
    holeRun = null;
    if (options.zeroRange) await options.zeroRange(run.offset, run.length);
    else for (let done = 0; done < run.length; done += zeros.length) await writeFully(handle, zeros.subarray(0, Math.min(zeros.length, run.length - done)), run.offset + done);
    result.bytesWritten += run.length;
  };
  for (let position = 0; position < index.chunkCount; position++) {
    // Stop starting chunks, but let those being written finish before the handle closes.
    if (options.signal?.aborted) failure ??= options.signal.reason as Error;
    if (failure) break;
    const digest = index.get(position);
    const length = index.chunkLength(position);
    if (!digest) {
      if (options.writeHoles) {
        const offset = options.targetOffset + position * volume.chunkSize;
        if (holeRun && holeRun.offset + holeRun.length === offset) holeRun.length += length;
        else {
          await flushHoles();
          holeRun = { offset, length };
        }
      }
      options.onProgress?.(length);
      continue;
    }
    while (inFlight.size >= parallel) await Promise.race(inFlight);
    const task = fetchAndWrite(position, digest).catch((error: Error) => {
      failure ??= error;
    });
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
  }
  await flushHoles();
  await Promise.all(inFlight);
  if (failure) throw failure;
  return result;
}

/** Re-read a written volume and compute its BLAKE3 content digest. */
export async function contentDigestOf(handle: FileHandle, kind: 'file' | 'block-device', offset: number, size: number, onProgress?: (bytes: number) => void): Promise<string> {
  const hasher = new ContentHasher();
  const buffer = Buffer.allocUnsafe(4 << 20);
  const cursor = dataRanges(handle.fd, kind, offset, offset + size).cursor();
  for (let position = 0; position < size; position += buffer.length) {
    const length = Math.min(buffer.length, size - position);
    const spans = cursor.within(offset + position, offset + position + length);
    if (spans.length === 0) {
      hasher.updateZeros(length);
    } else {
      const view = buffer.subarray(0, length);
      if (!(spans.length === 1 && spans[0]![0] === 0 && spans[0]![1] === length)) view.fill(0);
      for (const [start, end] of spans) await readFully(handle, view, start, end - start, offset + position + start, 'verification read');
      hasher.update(view);
    }
    onProgress?.(length);
  }
  return hasher.digest();
}
