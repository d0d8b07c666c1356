// BLAKE3-256 digests: the names of chunks, indexes and volumes. Always 64 lowercase
// hex characters on the wire and on disk; 32 raw bytes inside indexes and the catalog.
import { blake3, Blake3Hasher } from '@napi-rs/blake-hash';
import { FormatError } from '../core/errors.js';

export const DIGEST_BYTES = 32;
export const ZERO_DIGEST = '0'.repeat(64);
const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST_PATTERN.test(value);
}

export function assertDigest(value: unknown, what: string): string {
  if (!isDigest(value))
    throw new FormatError(`${what} is not a BLAKE3 digest (64 lowercase hex characters): ${JSON.stringify(value)}`);
  return value;
}

export function digestOf(bytes: Uint8Array): string {
  return blake3(bytes).toString('hex');
}

export function digestBytesOf(bytes: Uint8Array): Buffer {
  return blake3(bytes);
}

export { Blake3Hasher };

/** A streaming hasher that also accepts runs of zeros without allocating them each time. */
export class ContentHasher {
  private readonly hasher = new Blake3Hasher();
  private static zeros = Buffer.alloc(1 << 20);
  bytes = 0;

  update(bytes: Uint8Array): this {
    this.hasher.update(bytes as Buffer);
    this.bytes += bytes.length;
    return this;
  }

  updateZeros(length: number): this {
    let left = length;
    while (left > 0) {
      const step = Math.min(left, ContentHasher.zeros.length);
      this.hasher.update(
        step === ContentHasher.zeros.length ? ContentHasher.zeros : ContentHasher.zeros.subarray(0, step),
      );
      left -= step;
    }
    this.bytes += length;
    return this;
  }

  digest(): string {
    return this.hasher.digest('hex');
  }
}
