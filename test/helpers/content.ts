// Deterministic "realistic" content: text-like runs, incompressible runs and zeros,
// from a seeded generator, so tests and benchmarks see the same bytes every time.
import fs from 'node:fs/promises';

export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  fill(buffer: Buffer): void {
    let position = 0;
    for (; position + 4 <= buffer.length; position += 4) buffer.writeUInt32LE(this.next(), position);
    for (; position < buffer.length; position++) buffer[position] = this.next() & 0xff;
  }
}

const WORDS =
  'the of and to in is was for on that with as by at from his it an were are which this be or has had not first one their its new after but who they have her she two been other when there all during into school time may years more most only over city some world would where later up such used many can state about national out known university united then made'.split(
    ' ',
  );

/** Text-like bytes: words from a small vocabulary, numbers and line breaks. */
export function textLike(prng: Prng, length: number): Buffer {
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const roll = prng.next();
    const word = roll % 17 === 0 ? String(roll % 100000) : WORDS[roll % WORDS.length]!;
    const separator = roll % 13 === 0 ? '\n' : ' ';
    parts.push(word, separator);
    size += word.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, length);
}

/** A mix of 60% text-like, 30% random and 10% zeros, in runs of 64 KiB to 1 MiB. */
export function mixedContent(prng: Prng, length: number): Buffer {
  const out = Buffer.alloc(length);
  let position = 0;
  while (position < length) {
    const run = Math.min(length - position, (64 << 10) * (1 + (prng.next() % 16)));
    const kind = prng.next() % 10;
    if (kind < 6) textLike(prng, run).copy(out, position);
    else if (kind < 9) prng.fill(out.subarray(position, position + run));
    position += run;
  }
  return out;
}

export async function writeMixedFile(file: string, length: number, seed: number): Promise<void> {
  const prng = new Prng(seed);
  const handle = await fs.open(file, 'w');
  try {
    const step = 16 << 20;
    for (let position = 0; position < length; position += step) {
      await handle.write(mixedContent(prng, Math.min(step, length - position)), 0, undefined, position);
    }
  } finally {
    await handle.close();
  }
}

/**
 * A large file quickly: 64 MiB of mixed content is made once and tiled, with every
 * 64 KiB stamped with its own position so that no two chunks (of any size) are alike.
 */
export async function writeLargeDistinctFile(file: string, length: number, seed: number): Promise<void> {
  const prng = new Prng(seed);
  const pool = mixedContent(prng, 64 << 20);
  const handle = await fs.open(file, 'w');
  try {
    const block = Buffer.alloc(16 << 20);
    for (let position = 0; position < length; position += block.length) {
      const poolOffset = position % pool.length;
      pool.copy(block, 0, poolOffset, poolOffset + block.length);
      for (let piece = 0; piece < block.length; piece += 64 << 10) {
        block.writeDoubleLE(position + piece + seed, piece + 4000);
      }
      await handle.write(block, 0, Math.min(block.length, length - position), position);
    }
  } finally {
    await handle.close();
  }
}
