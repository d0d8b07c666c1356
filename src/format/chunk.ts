// A chunk is a run of volume bytes named by BLAKE3-256 of those bytes and stored as
// one LZ4 frame, so `lz4 -dc CHUNK | b3sum` prints the chunk's own name.
import { DigestMismatchError, UsageError } from '../core/errors.js';
import { digestOf } from './digest.js';
import { decodeFrame, encodeFrame } from './lz4-frame.js';

export const MIN_CHUNK_SIZE = 256 << 10;
export const MAX_CHUNK_SIZE = 8 << 20;
/** The default for a volume whose size is not known; see chunkSizeFor. */
export const DEFAULT_CHUNK_SIZE = 512 << 10;
/** Entries the automatic chunk size aims to keep an index under (32 MiB of digests). */
export const AUTO_INDEX_ENTRIES = 1 << 20;

/**
 * The automatic chunk size of a volume: 512 KiB, where a nightly delta stays close to
 * the bytes that changed at half the objects of 256 KiB (docs/benchmarks.md), doubled
 * for volumes so large that their index would pass a million entries, so a client's
 * memory and every image's index stay bounded.
 */
export function chunkSizeFor(volumeSize: number): number {
  let size = DEFAULT_CHUNK_SIZE;
  while (size < MAX_CHUNK_SIZE && Math.ceil(volumeSize / size) > AUTO_INDEX_ENTRIES) size *= 2;
  return size;
}

export function checkChunkSize(size: number): number {
  if (!Number.isInteger(size) || size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE || (size & (size - 1)) !== 0) {
    throw new UsageError(`chunk size must be a power of two from 256 KiB to 8 MiB, got ${size}`);
  }
  return size;
}

/** Parse "1M", "256K", "4MiB" or a plain byte count. */
export function parseChunkSize(text: string): number {
  const match = /^(\d+)\s*([kKmM])?(i?[bB])?$/.exec(text.trim());
  if (!match) throw new UsageError(`cannot read chunk size ${JSON.stringify(text)}`);
  const unit = match[2]?.toLowerCase();
  const multiplier = unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1;
  return checkChunkSize(Number(match[1]) * multiplier);
}

const zeroPage = Buffer.alloc(64 << 10);

/** True when every byte is zero; compares against a zero page with memcmp. */
export function isAllZero(bytes: Buffer): boolean {
  for (let offset = 0; offset < bytes.length; offset += zeroPage.length) {
    const end = Math.min(offset + zeroPage.length, bytes.length);
    if (
      !bytes
        .subarray(offset, end)
        .equals(end - offset === zeroPage.length ? zeroPage : zeroPage.subarray(0, end - offset))
    ) {
      return false;
    }
  }
  return true;
}

export interface EncodedChunk {
  digest: string;
  frame: Buffer;
}

export function encodeChunk(data: Buffer): EncodedChunk {
  return { digest: digestOf(data), frame: encodeFrame(data) };
}

/** Decompress a stored chunk and prove it is the one asked for. */
export function decodeChunk(
  frame: Buffer,
  expectedDigest: string,
  maxSize = MAX_CHUNK_SIZE,
  what = `chunk ${expectedDigest}`,
): Buffer {
  const data = decodeFrame(frame, maxSize, what);
  const actual = digestOf(data);
  if (actual !== expectedDigest) throw new DigestMismatchError(expectedDigest, actual, what);
  return data;
}
