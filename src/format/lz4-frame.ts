// The LZ4 frame format (lz4_Frame_format.md, version 1.6) written and read around
// lz4-napi's block codec, which is about twice as fast as its own frame codec here.
// We write one canonical form and accept only that form, so every stored object reads
// back with `lz4 -dc` and no frame option can smuggle in unbounded output.
import lz4 from 'lz4-napi';
import { FormatError } from '../core/errors.js';
import { xxhash32 } from './xxhash32.js';

export const LZ4_MAGIC = 0x184d2204;
const FLG_VERSION = 0x40;
const FLG_BLOCK_INDEPENDENCE = 0x20;
const FLG_BLOCK_CHECKSUM = 0x10;
const FLG_CONTENT_SIZE = 0x08;
const FLG_CONTENT_CHECKSUM = 0x04;
const FLG_DICT_ID = 0x01;
/** Version 01, independent blocks, content size present, no checksums, no dictionary. */
const CANONICAL_FLG = FLG_VERSION | FLG_BLOCK_INDEPENDENCE | FLG_CONTENT_SIZE;
const BLOCK_MAX_CODES: Record<number, number> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 };
const WRITE_BLOCK_CODE = 7;
export const WRITE_BLOCK_MAX = 4 << 20;
const HEADER_BYTES = 4 + 2 + 8 + 1;
const UNCOMPRESSED_BIT = 0x80000000;

export const END_MARK = Buffer.alloc(4);

export function frameHeader(contentSize: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(LZ4_MAGIC, 0);
  header[4] = CANONICAL_FLG;
  header[5] = WRITE_BLOCK_CODE << 4;
  header.writeBigUInt64LE(BigInt(contentSize), 6);
  header[14] = (xxhash32(header.subarray(4, 14)) >>> 8) & 0xff;
  return header;
}

/**
 * The blocks of a frame for `data`, each with its 4-byte size field in front: what
 * goes between the header and the end mark. Every part is freshly allocated (never a
 * view of `data`), so `data` may be reused as soon as this returns.
 */
export function encodeBlocks(data: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += WRITE_BLOCK_MAX) {
    const block = data.subarray(offset, Math.min(offset + WRITE_BLOCK_MAX, data.length));
    // compressSync returns [u32 uncompressed size][raw LZ4 block]; the prefix slot is
    // exactly where the frame wants the block's compressed size.
    const compressed = lz4.compressSync(block);
    const compressedLength = compressed.length - 4;
    if (compressedLength < block.length) {
      compressed.writeUInt32LE(compressedLength, 0);
      parts.push(compressed);
    } else {
      const stored = Buffer.allocUnsafeSlow(4 + block.length);
      stored.writeUInt32LE((block.length | UNCOMPRESSED_BIT) >>> 0, 0);
      block.copy(stored, 4);
      parts.push(stored);
    }
  }
  return parts;
}

/** A whole frame as a list of buffers (header, blocks, end mark), to send without joining. */
export function frameParts(contentSize: number, blocks: Buffer[]): Buffer[] {
  return [frameHeader(contentSize), ...blocks, END_MARK];
}

/** Compress `data` into one canonical LZ4 frame. */
export function encodeFrame(data: Buffer): Buffer {
  return Buffer.concat(frameParts(data.length, encodeBlocks(data)));
}

export interface FrameInfo {
  contentSize: number;
  blockMax: number;
  headerBytes: number;
}

/** Parse and check the frame descriptor; throws FormatError naming the problem. */
export function readFrameHeader(frame: Buffer, what = 'LZ4 frame'): FrameInfo {
  if (frame.length < HEADER_BYTES + 4) throw new FormatError(`${what}: truncated (${frame.length} bytes)`);
  if (frame.readUInt32LE(0) !== LZ4_MAGIC) throw new FormatError(`${what}: not an LZ4 frame (bad magic at offset 0)`);
  const flg = frame[4]!;
  if ((flg & 0xc0) !== FLG_VERSION) throw new FormatError(`${what}: unsupported frame version`);
  const unsupported: string[] = [];
  if (!(flg & FLG_BLOCK_INDEPENDENCE)) unsupported.push('linked blocks');
  if (flg & FLG_BLOCK_CHECKSUM) unsupported.push('block checksums');
  if (flg & FLG_CONTENT_CHECKSUM) unsupported.push('content checksum');
  if (flg & FLG_DICT_ID) unsupported.push('dictionary id');
  if (!(flg & FLG_CONTENT_SIZE)) unsupported.push('missing content size');
  if (flg & 0x02) unsupported.push('reserved flag bit');
  if (unsupported.length) throw new FormatError(`${what}: unsupported frame options (${unsupported.join(', ')})`);
  const bd = frame[5]!;
  const blockMax = BLOCK_MAX_CODES[(bd >> 4) & 0x07];
  if (!blockMax || bd & 0x8f) throw new FormatError(`${what}: bad block descriptor byte 0x${bd.toString(16)}`);
  const expectedChecksum = (xxhash32(frame.subarray(4, 14)) >>> 8) & 0xff;
  if (frame[14] !== expectedChecksum) throw new FormatError(`${what}: frame header checksum mismatch`);
  const contentSize = frame.readBigUInt64LE(6);
  if (contentSize > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${what}: content size out of range`);
  return { contentSize: Number(contentSize), blockMax, headerBytes: HEADER_BYTES };
}

export interface DecodeOptions {
  /**
   * Accept only the one frame we write (4 MiB blocks, each full but the last), as the
   * server does for uploads; readers also take the smaller block sizes `lz4 -B4..-B6`
   * writes, which hold the same content.
   */
  canonical?: boolean;
}

/**
 * Decompress a frame. `maxContentSize` bounds the output before any work is done, so a
 * small hostile frame cannot expand into gigabytes.
 */
export function decodeFrame(
  frame: Buffer,
  maxContentSize: number,
  what = 'LZ4 frame',
  options: DecodeOptions = {},
): Buffer {
  const { contentSize, blockMax, headerBytes } = readFrameHeader(frame, what);
  if (options.canonical && blockMax !== WRITE_BLOCK_MAX) {
    throw new FormatError(
      `${what}: not the canonical frame (block maximum size ${blockMax >> 10} KiB; it must be 4 MiB, BD 0x70)`,
    );
  }
  if (contentSize > maxContentSize) {
    throw new FormatError(
      `${what}: declares ${contentSize} bytes of content, more than the limit of ${maxContentSize}`,
    );
  }
  const blocks: Buffer[] = [];
  let produced = 0;
  let position = headerBytes;
  for (;;) {
    if (position + 4 > frame.length) throw new FormatError(`${what}: truncated at offset ${position} (no end mark)`);
    const field = frame.readUInt32LE(position);
    if (field === 0) {
      position += 4;
      break;
    }
    const storedRaw = (field & UNCOMPRESSED_BIT) !== 0;
    const size = field & 0x7fffffff;
    if (size > blockMax)
      throw new FormatError(`${what}: block at offset ${position} is larger than the frame's block size`);
    if (position + 4 + size > frame.length)
      throw new FormatError(`${what}: truncated inside the block at offset ${position}`);
    const remaining = contentSize - produced;
    let block: Buffer;
    if (storedRaw) {
      block = frame.subarray(position + 4, position + 4 + size);
    } else {
      // lz4-napi wants [u32 uncompressed size][block]: borrow the size field for that,
      // declaring the most this block may produce, and put it back afterwards.
      frame.writeUInt32LE(Math.min(blockMax, remaining), position);
      try {
        block = lz4.uncompressSync(frame.subarray(position, position + 4 + size));
      } catch (error) {
        throw new FormatError(`${what}: corrupt LZ4 block at offset ${position}: ${(error as Error).message}`);
      } finally {
        frame.writeUInt32LE(field, position);
      }
    }
    if (block.length > remaining)
      throw new FormatError(`${what}: blocks hold more than the declared ${contentSize} bytes`);
    if (options.canonical) checkCanonicalBlock(block.length, blockMax, remaining, position, what);
    blocks.push(block);
    produced += block.length;
    position += 4 + size;
  }
  if (position !== frame.length)
    throw new FormatError(`${what}: ${frame.length - position} unexpected bytes after the end mark`);
  if (produced !== contentSize)
    throw new FormatError(`${what}: holds ${produced} bytes, header declares ${contentSize}`);
  // A single stored (uncompressed) block is returned as a view into `frame`.
  if (blocks.length === 1) return blocks[0]!;
  return Buffer.concat(blocks, produced);
}

/** Canonical blocks are full except the last, so a content has exactly one frame. */
function checkCanonicalBlock(
  length: number,
  blockMax: number,
  remaining: number,
  position: number,
  what: string,
): void {
  if (length === 0) throw new FormatError(`${what}: not the canonical frame (empty block at offset ${position})`);
  if (length < blockMax && length < remaining) {
    throw new FormatError(
      `${what}: not the canonical frame (short block at offset ${position}, ${length} bytes, before the last; blocks hold exactly ${blockMax} bytes)`,
    );
  }
}
