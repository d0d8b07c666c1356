// Bounds-checked little-endian reads over untrusted NTFS structures. Every read that
// would leave the buffer, and every value a caller rejects, becomes a FormatError that
// names the structure and the byte offset on the volume (or within the structure).
import { FormatError } from '../../../src/core/errors.js';

export class ByteView {
  /**
   * @param bytes the structure's bytes
   * @param label what the bytes are, with the device: "/dev/sdb1: MFT record 64"
   * @param volumeOffset where bytes[0] lies on the volume, when it is one contiguous piece
   */
  constructor(
    readonly bytes: Buffer,
    readonly label: string,
    readonly volumeOffset: number | null,
  ) {}

  get length(): number {
    return this.bytes.length;
  }

  /** The error to throw for a problem found at `offset` within this structure. */
  error(offset: number, problem: string): FormatError {
    const where = this.volumeOffset === null ? `offset ${offset}` : `byte ${this.volumeOffset + offset}`;
    return new FormatError(`${this.label} at ${where}: ${problem}`);
  }

  check(offset: number, length: number, what: string): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.bytes.length
    ) {
      throw this.error(
        Math.max(0, Math.min(offset, this.bytes.length)),
        `${what} (${length} bytes at offset ${offset}) runs past the end of the ${this.bytes.length}-byte structure`,
      );
    }
  }

  u8(offset: number, what = 'byte'): number {
    this.check(offset, 1, what);
    return this.bytes[offset]!;
  }

  i8(offset: number, what = 'byte'): number {
    this.check(offset, 1, what);
    return this.bytes.readInt8(offset);
  }

  u16(offset: number, what = '16-bit field'): number {
    this.check(offset, 2, what);
    return this.bytes.readUInt16LE(offset);
  }

  u32(offset: number, what = '32-bit field'): number {
    this.check(offset, 4, what);
    return this.bytes.readUInt32LE(offset);
  }

  u64big(offset: number, what = '64-bit field'): bigint {
    this.check(offset, 8, what);
    return this.bytes.readBigUInt64LE(offset);
  }

  /** An unsigned 64-bit field that must fit a JavaScript number. */
  u64(offset: number, what = '64-bit field'): number {
    const value = this.u64big(offset, what);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(offset, `${what} is ${value}, too large`);
    return Number(value);
  }

  /** A signed 64-bit field that must fit a JavaScript number. */
  i64(offset: number, what = '64-bit field'): number {
    this.check(offset, 8, what);
    const value = this.bytes.readBigInt64LE(offset);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))
      throw this.error(offset, `${what} is ${value}, out of range`);
    return Number(value);
  }

  /** A signed little-endian integer of 1 to 8 bytes (runlist fields). */
  intN(offset: number, size: number, what: string): number {
    this.check(offset, size, what);
    if (size <= 6) return this.bytes.readIntLE(offset, size);
    let value = 0n;
    for (let index = size - 1; index >= 0; index--) value = (value << 8n) | BigInt(this.bytes[offset + index]!);
    value = BigInt.asIntN(size * 8, value);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))
      throw this.error(offset, `${what} is ${value}, out of range`);
    return Number(value);
  }

  /** An unsigned little-endian integer of 1 to 8 bytes. */
  uintN(offset: number, size: number, what: string): number {
    this.check(offset, size, what);
    if (size <= 6) return this.bytes.readUIntLE(offset, size);
    let value = 0n;
    for (let index = size - 1; index >= 0; index--) value = (value << 8n) | BigInt(this.bytes[offset + index]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(offset, `${what} is ${value}, too large`);
    return Number(value);
  }

  /** UTF-16LE text of `characters` code units. */
  utf16(offset: number, characters: number, what = 'name'): string {
    this.check(offset, characters * 2, what);
    return this.bytes.toString('utf16le', offset, offset + characters * 2);
  }

  slice(offset: number, length: number, what = 'field'): Buffer {
    this.check(offset, length, what);
    return this.bytes.subarray(offset, offset + length);
  }

  /** A view of a part of this one, for a nested structure. */
  view(offset: number, length: number, what: string, label = this.label): ByteView {
    this.check(offset, length, what);
    return new ByteView(
      this.bytes.subarray(offset, offset + length),
      label,
      this.volumeOffset === null ? null : this.volumeOffset + offset,
    );
  }
}
