// The one walk over a volume's chunks: real LZ4 frames and BLAKE3 names, fetches that
// finish out of order, corrupt and misnamed frames, holes, the cache's byte bound, and
// a signal that stops the fetches in flight.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t from 'tap';
import { CorruptChunkError, DigestMismatchError, FormatError, NotFoundError } from '../../src/core/errors.js';
import { MIN_CHUNK_SIZE, encodeChunk } from '../../src/format/chunk.js';
import {
  ChunkCache,
  type FetchFrame,
  type VolumeChunk,
  contentDigestOfPieces,
  volumeChunks,
} from '../../src/format/chunk-stream.js';
import { ContentHasher, digestOf } from '../../src/format/digest.js';
import { FixedIndex, decodeIndex } from '../../src/format/fixed-index.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import { tempDir } from '../helpers/tmp.js';

const CHUNK = MIN_CHUNK_SIZE;

/** Chunk bytes that compress a little and differ by seed. */
function chunkBytes(seed: number, length = CHUNK): Buffer {
  const bytes = Buffer.alloc(length);
  for (let offset = 0; offset < length; offset += 4)
    bytes.writeUInt32LE((Math.imul(offset + 1, 2654435761) ^ seed) >>> (offset % 7), offset);
  return bytes;
}

interface Volume {
  index: FixedIndex;
  frames: Map<string, Buffer>;
  /** What each position holds, holes as zeros. */
  expected: Buffer[];
}

/** A volume from a layout: a number is a chunk seed, null a hole; the last chunk may be short. */
function buildVolume(layout: (number | null)[], lastLength = CHUNK): Volume {
  const volumeSize = (layout.length - 1) * CHUNK + lastLength;
  const index = new FixedIndex(CHUNK, volumeSize);
  const frames = new Map<string, Buffer>();
  const expected = layout.map((seed, position) => {
    const length = index.chunkLength(position);
    if (seed === null) return Buffer.alloc(length);
    const bytes = chunkBytes(seed, length);
    const { digest, frame } = encodeChunk(bytes);
    frames.set(digest, frame);
    index.set(position, digest);
    return bytes;
  });
  return { index, frames, expected };
}

/** A store of frames whose fetches can be delayed, counted and watched. */
function frameStore(frames: Map<string, Buffer>, delayOf: (digest: string, call: number) => number = () => 0) {
  const calls: string[] = [];
  const signals: AbortSignal[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const fetch: FetchFrame = async (digest, signal) => {
    const call = calls.push(digest) - 1;
    signals.push(signal);
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    try {
      await sleep(delayOf(digest, call), undefined, { signal });
      const frame = frames.get(digest);
      if (!frame) throw new NotFoundError(`chunk ${digest} does not exist`);
      return Buffer.from(frame);
    } finally {
      inFlight--;
    }
  };
  return { fetch, calls, signals, mostInFlight: () => mostInFlight };
}

async function collect(chunks: AsyncIterable<VolumeChunk>): Promise<VolumeChunk[]> {
  const all: VolumeChunk[] = [];
  for await (const chunk of chunks) all.push({ ...chunk, bytes: Buffer.from(chunk.bytes) });
  return all;
}

t.test('chunks come in volume order even when later fetches finish first', async (t) => {
  const layout = [1, 2, null, 3, 4, 5, null, null, 6, 7, 8];
  const volume = buildVolume(layout, 100_000);
  // Earlier calls wait longest, so completions arrive in reverse order.
  const store = frameStore(volume.frames, (_digest, call) => 60 - call * 6);
  const chunks = await collect(volumeChunks(volume.index, store.fetch, { readAhead: 4 }));
  t.same(
    chunks.map((chunk) => chunk.position),
    layout.map((_, position) => position),
  );
  for (const chunk of chunks) {
    t.ok(chunk.bytes.equals(volume.expected[chunk.position]!), `position ${chunk.position} holds its bytes`);
    t.equal(chunk.offset, chunk.position * CHUNK);
    t.equal(chunk.length, volume.expected[chunk.position]!.length);
    t.equal(chunk.digest, volume.index.get(chunk.position));
  }
  t.equal(chunks.at(-1)!.length, 100_000, 'the short last chunk has its own length');
  t.ok(store.mostInFlight() > 1, `fetches overlap (${store.mostInFlight()} at once)`);
  t.ok(store.mostInFlight() <= 4, `never more than the read-ahead in flight (${store.mostInFlight()})`);
  const hasher = new ContentHasher();
  for (const bytes of volume.expected) hasher.update(bytes);
  t.equal(
    await contentDigestOfPieces(volumeChunks(volume.index, store.fetch)),
    hasher.digest(),
    'the content digest is BLAKE3 of the whole volume',
  );
});

t.test('holes are views of shared zeros, not a new buffer each, and are never fetched', async (t) => {
  const volume = buildVolume([null, 1, null, null, 2, null]);
  const store = frameStore(volume.frames);
  const holes: Buffer[] = [];
  for await (const chunk of volumeChunks(volume.index, store.fetch)) if (chunk.digest === null) holes.push(chunk.bytes);
  t.equal(holes.length, 4);
  for (const hole of holes) t.equal(hole.length, CHUNK);
  t.ok(
    holes.every((hole) => hole.buffer === holes[0]!.buffer),
    'every hole is a view of the same memory',
  );
  t.ok(
    holes.every((hole) => hole.every((byte) => byte === 0)),
    'and it is zeros',
  );
  t.equal(store.calls.length, 2, 'only the two data chunks were fetched');
});

t.test('a chunk used again is fetched once, in flight or cached', async (t) => {
  const volume = buildVolume([1, 1, 1, 2, 1, 1, 2, 2]);
  const store = frameStore(volume.frames, () => 20);
  let loaded = 0;
  const chunks = await collect(volumeChunks(volume.index, store.fetch, { readAhead: 8, onLoaded: () => loaded++ }));
  t.equal(chunks.length, 8);
  t.same([...store.calls].sort(), [...volume.frames.keys()].sort(), 'each distinct chunk fetched exactly once');
  t.equal(loaded, 2, 'onLoaded counts real loads only');
});

t.test('read-ahead counts fetches, not positions: a run of holes does not stall it', async (t) => {
  const layout = [1, ...Array<null>(40).fill(null), 2, 3];
  const volume = buildVolume(layout);
  const store = frameStore(volume.frames, () => 30);
  const walk = volumeChunks(volume.index, store.fetch, { readAhead: 3 });
  await walk.next();
  t.equal(store.calls.length, 3, 'the chunks beyond the holes were fetched with the first');
  await walk.return(undefined);
});

t.test('a corrupt frame stops the walk with an error naming the chunk, the volume and where', async (t) => {
  const volume = buildVolume([1, 2, 3, 4]);
  const digest = volume.index.get(2)!;
  const frame = Buffer.from(volume.frames.get(digest)!);
  frame[frame.length - 40] ^= 0x5a;
  volume.frames.set(digest, frame);
  const store = frameStore(volume.frames);
  const seen: number[] = [];
  const walk = async () => {
    for await (const chunk of volumeChunks(volume.index, store.fetch, {
      describe: (position) => `volume p1 chunk ${position} at byte ${position * CHUNK}`,
    }))
      seen.push(chunk.position);
  };
  const error = await walk().then(
    () => null,
    (caught: unknown) => caught,
  );
  t.type(error, CorruptChunkError);
  t.type(error, FormatError, 'a format error: exit code 3 for the CLI');
  const corrupt = error as CorruptChunkError;
  t.match(corrupt.message, new RegExp(`^volume p1 chunk 2 at byte ${2 * CHUNK}: chunk ${digest} is corrupt \\(`));
  t.same(
    { digest: corrupt.digest, position: corrupt.position, offset: corrupt.offset },
    { digest, position: 2, offset: 2 * CHUNK },
  );
  t.same(seen, [0, 1], 'nothing at or after the corrupt chunk was handed out');
});

t.test('a frame that decodes to other bytes than its name is a digest mismatch', async (t) => {
  const volume = buildVolume([1, 2]);
  const digest = volume.index.get(1)!;
  volume.frames.set(digest, encodeFrame(chunkBytes(99)));
  const store = frameStore(volume.frames);
  const error = (await collect(volumeChunks(volume.index, store.fetch)).catch(
    (caught: unknown) => caught,
  )) as CorruptChunkError;
  t.type(error, CorruptChunkError);
  t.type(error.cause, DigestMismatchError);
  t.match(error.message, `chunk ${digest} is corrupt`);
  t.match(error.message, `content hashes to ${digestOf(chunkBytes(99))}, expected ${digest}`);
  t.match(error.message, `chunk 1 at byte ${CHUNK}`);
});

t.test('a frame written by the lz4 tool reads like our own', async (t) => {
  const directory = await tempDir(t);
  const bytes = chunkBytes(5);
  await fs.writeFile(path.join(directory, 'chunk'), bytes);
  await execa('lz4', [
    '-q',
    '-f',
    '--content-size',
    '--no-frame-crc',
    '-B5',
    path.join(directory, 'chunk'),
    path.join(directory, 'chunk.lz4'),
  ]);
  const index = new FixedIndex(CHUNK, CHUNK);
  index.set(0, digestOf(bytes));
  const frames = new Map([[digestOf(bytes), await fs.readFile(path.join(directory, 'chunk.lz4'))]]);
  const [chunk] = await collect(volumeChunks(index, frameStore(frames).fetch));
  t.ok(chunk!.bytes.equals(bytes));
});

t.test('a chunk of the wrong length for its place is refused', async (t) => {
  const volume = buildVolume([1, 2]);
  // Position 1 names a valid chunk that is half as long as the index says.
  const short = encodeChunk(chunkBytes(3, CHUNK / 2));
  volume.frames.set(short.digest, short.frame);
  volume.index.set(1, short.digest);
  const error = (await collect(volumeChunks(volume.index, frameStore(volume.frames).fetch)).catch(
    (caught: unknown) => caught,
  )) as Error;
  t.type(error, FormatError);
  t.match(error.message, `holds ${CHUNK / 2} bytes, the index expects ${CHUNK}`);
});

t.test('a fetch that fails keeps its error class and says where', async (t) => {
  const volume = buildVolume([1, 2]);
  volume.frames.delete(volume.index.get(1)!);
  const error = (await collect(volumeChunks(volume.index, frameStore(volume.frames).fetch)).catch(
    (caught: unknown) => caught,
  )) as Error;
  t.type(error, NotFoundError);
  t.match(error.message, new RegExp(`^chunk 1 at byte ${CHUNK}: chunk [0-9a-f]{64} does not exist`));
});

t.test('an aborted signal stops the walk and every fetch in flight', async (t) => {
  const volume = buildVolume([1, 2, 3, 4, 5, 6]);
  // The first chunk arrives at once, the rest would take a minute.
  const store = frameStore(volume.frames, (_digest, call) => (call === 0 ? 0 : 60_000));
  const controller = new AbortController();
  const walk = volumeChunks(volume.index, store.fetch, { readAhead: 4, signal: controller.signal });
  t.equal((await walk.next()).value?.position, 0);
  const started = Date.now();
  const reason = new Error('operator pressed ^C');
  setTimeout(() => controller.abort(reason), 20);
  await t.rejects(walk.next(), reason, 'the walk throws the signal reason');
  t.ok(Date.now() - started < 5000, 'without waiting for the slow fetches');
  t.equal(store.signals.length, 5, 'the first chunk and four ahead were asked for');
  t.ok(
    store.signals.every((signal) => signal.aborted),
    'every fetch was told to stop',
  );
});

t.test('leaving the walk early cancels the read-ahead', async (t) => {
  const volume = buildVolume([1, 2, 3, 4, 5]);
  const store = frameStore(volume.frames, (_digest, call) => (call === 0 ? 0 : 60_000));
  for await (const chunk of volumeChunks(volume.index, store.fetch, { readAhead: 3 })) {
    t.equal(chunk.position, 0);
    break;
  }
  t.ok(
    store.signals.length > 1 && store.signals.every((signal) => signal.aborted),
    'fetches still running were stopped',
  );
});

t.test('fetches that ignore the cancel are waited for: nothing the walk started outlives it', async (t) => {
  const volume = buildVolume([1, 2, 3, 4, 5]);
  let running = 0;
  let started = 0;
  const deaf: FetchFrame = async (digest) => {
    started++;
    running++;
    await sleep(started === 1 ? 0 : 200);
    running--;
    return volume.frames.get(digest)!;
  };
  const controller = new AbortController();
  const walk = volumeChunks(volume.index, deaf, { readAhead: 3, signal: controller.signal });
  await walk.next();
  controller.abort(new Error('stop'));
  await t.rejects(walk.next(), /stop/);
  t.ok(started > 1, `fetches were running (${started})`);
  t.equal(running, 0, 'none still running once the walk has ended');
});

t.test('the cache holds at most its byte bound, dropping the least recently used', async (t) => {
  const cache = new ChunkCache(2.5 * CHUNK);
  const loads: string[] = [];
  const get = (name: string, length = CHUNK) =>
    cache.get(name, async () => {
      loads.push(name);
      return Buffer.alloc(length);
    });
  await get('a');
  await get('b');
  await get('a');
  await get('c');
  t.ok(cache.bytes <= 2.5 * CHUNK, `holds ${cache.bytes} bytes`);
  t.ok(cache.has('a') && cache.has('c') && !cache.has('b'), 'b, used least recently, was dropped');
  await get('huge', 3 * CHUNK);
  t.notOk(cache.has('huge'), 'a chunk larger than the whole bound is not kept');
  t.ok(cache.bytes <= 2.5 * CHUNK);
  const [first, second] = await Promise.all([get('d'), get('d')]);
  t.equal(first, second, 'two asking at once share one load');
  t.same(loads, ['a', 'b', 'c', 'huge', 'd']);
  const failing = cache.get('e', async () => {
    throw new Error('lost');
  });
  await t.rejects(failing, /lost/);
  t.notOk(cache.has('e'), 'a failed load is not cached');
  t.ok(cache.bytes <= 2.5 * CHUNK);
});

t.test('one index decoder for client and server', async (t) => {
  const volume = buildVolume([1, null, 2]);
  const bytes = volume.index.encode();
  const frame = encodeFrame(bytes);
  const decoded = decodeIndex(frame, digestOf(bytes));
  t.same(decoded.encode(), bytes);
  const wrongName = digestOf(Buffer.from('another index'));
  t.throws(() => decodeIndex(frame, wrongName, `index ${wrongName} of p1`), {
    name: 'DigestMismatchError',
    message: new RegExp(`^index ${wrongName} of p1: content hashes to ${digestOf(bytes)}`),
  });
  t.throws(
    () => decodeIndex(encodeFrame(Buffer.from('not an index')), digestOf(Buffer.from('not an index'))),
    /bad magic|truncated header/,
  );
});
