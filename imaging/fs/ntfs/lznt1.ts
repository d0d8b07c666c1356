// LZNT1, the compression of NTFS compressed files: a compression unit is a series of
// 4 KiB chunks, each stored raw or as LZ77 tokens whose offset/length split widens
// as the position within the chunk grows. Short chunks and a missing tail are zeros.

const CHUNK_SIZE = 4096;

/** Why a unit could not be decompressed; the caller names the file and position. */
export class Lznt1Error extends Error {}

/**
 * Decompress one compression unit from `source` into `target` (its full uncompressed
 * size); whatever the compressed data does not cover is zero-filled.
 */
export function decompressLznt1(source: Buffer, target: Buffer): void {
  let input = 0;
  let output = 0;
  while (output < target.length && input + 2 <= source.length) {
    const header = source.readUInt16LE(input);
    if (header === 0) break;
    const chunkEnd = input + (header & 0x0fff) + 3;
    if (chunkEnd > source.length) throw new Lznt1Error(`chunk at offset ${input} runs past the compressed data`);
    const chunkStart = output;
    const chunkLimit = Math.min(chunkStart + CHUNK_SIZE, target.length);
    input += 2;
    if ((header & 0x8000) === 0) {
      // A raw chunk is always a whole 4 KiB.
      if (chunkEnd - input !== CHUNK_SIZE)
        throw new Lznt1Error(
          `uncompressed chunk at offset ${input - 2} is ${chunkEnd - input} bytes, expected ${CHUNK_SIZE}`,
        );
      source.copy(target, output, input, input + Math.min(CHUNK_SIZE, target.length - output));
      output = chunkLimit;
      input = chunkEnd;
      continue;
    }
    while (input < chunkEnd) {
      let flags = source[input++]!;
      for (let token = 0; token < 8 && input < chunkEnd; token++, flags >>= 1) {
        if ((flags & 1) === 0) {
          if (output >= chunkLimit) throw new Lznt1Error(`chunk at offset ${chunkStart} decompresses past 4096 bytes`);
          target[output++] = source[input++]!;
          continue;
        }
        if (input + 2 > chunkEnd) throw new Lznt1Error(`back-reference at offset ${input} is cut off`);
        const position = output - chunkStart;
        if (position === 0) throw new Lznt1Error(`back-reference at the start of the chunk at offset ${input}`);
        let lengthBits = 12;
        for (let scan = position - 1; scan >= 0x10; scan >>= 1) lengthBits--;
        const pair = source.readUInt16LE(input);
        input += 2;
        const distance = (pair >> lengthBits) + 1;
        const length = (pair & ((1 << lengthBits) - 1)) + 3;
        if (distance > position) throw new Lznt1Error(`back-reference ${distance} bytes before the start of the chunk`);
        if (output + length > chunkLimit) throw new Lznt1Error(`back-reference of ${length} bytes runs past the chunk`);
        // Byte by byte: the copy may overlap what it produces.
        for (let index = 0; index < length; index++, output++) target[output] = target[output - distance]!;
      }
    }
    // A chunk that decompressed short is padded with zeros to its 4 KiB.
    if (output < chunkLimit) {
      target.fill(0, output, chunkLimit);
      output = chunkLimit;
    }
    input = chunkEnd;
  }
  if (output < target.length) target.fill(0, output);
}
