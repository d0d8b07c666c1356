import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { decodeChunk, encodeChunk, isAllZero, parseChunkSize } from '../../src/format/chunk.js';
import { digestOf } from '../../src/format/digest.js';
import { decodeFrame, encodeFrame, readFrameHeader } from '../../src/format/lz4-frame.js';
import { xxhash32 } from '../../src/format/xxhash32.js';
import { tempDir } from '../helpers/tmp.js';
import { chunkVectors } from './vectors.js';

t.test('golden vectors: the lz4 and b3sum tools agree with our chunk names', async (t) => {
  const directory = await tempDir(t);
  for (const vector of chunkVectors) {
    const data = vector.bytes();
    const { digest, frame } = encodeChunk(data);
    t.equal(digest, vector.digest, `${vector.name}: digest is the recorded one`);
    const file = path.join(directory, digest);
    await fs.writeFile(file, frame);
    const { stdout } = await execa('sh', ['-c', `lz4 -dc ${file} | b3sum`]);
    t.equal(stdout.split(/\s+/)[0], digest, `${vector.name}: lz4 -dc | b3sum prints the chunk's name`);
    t.same(decodeChunk(frame, digest), data, `${vector.name}: decodes to the original bytes`);
  }
});

t.test('frames written by the lz4 tool (content size, no checksum) decode', async (t) => {
  const directory = await tempDir(t);
  const data = chunkVectors[0]!.bytes();
  await fs.writeFile(path.join(directory, 'in'), data);
  await execa('lz4', [
    '-1',
    '-q',
    '-f',
    '--content-size',
    '--no-frame-crc',
    '-B4',
    path.join(directory, 'in'),
    path.join(directory, 'in.lz4'),
  ]);
  const frame = await fs.readFile(path.join(directory, 'in.lz4'));
  t.equal(digestOf(decodeFrame(frame, 8 << 20)), digestOf(data));
  const withChecksum = path.join(directory, 'checksum.lz4');
  await execa('lz4', ['-1', '-q', '-f', '--content-size', path.join(directory, 'in'), withChecksum]);
  const checksummed = await fs.readFile(withChecksum);
  t.throws(() => decodeFrame(checksummed, 8 << 20), /unsupported frame options \(content checksum\)/);
});

t.test('bad frames fail with a message naming the problem', async (t) => {
  const data = chunkVectors[1]!.bytes();
  const { digest, frame } = encodeChunk(data);
  t.throws(() => decodeChunk(frame.subarray(0, frame.length - 10), digest), /truncated/);
  t.throws(
    () => decodeChunk(Buffer.concat([frame, Buffer.from([1, 2, 3])]), digest),
    /3 unexpected bytes after the end mark/,
  );
  const badMagic = Buffer.from(frame);
  badMagic[0] ^= 0xff;
  t.throws(() => decodeChunk(badMagic, digest), /not an LZ4 frame/);
  const badHeader = Buffer.from(frame);
  badHeader[14] ^= 0xff;
  t.throws(() => decodeChunk(badHeader, digest), /header checksum mismatch/);
  const corrupt = Buffer.from(frame);
  for (let position = 40; position < 60; position++) corrupt[position] = 0xff;
  t.throws(() => decodeChunk(corrupt, digest), /corrupt LZ4 block|hashes to|more than the declared/);
  t.throws(() => decodeChunk(frame, `${'0'.repeat(63)}1`), { code: 'digest_mismatch' });
  t.same(frame, encodeChunk(data).frame, 'decoding leaves the frame bytes as they were');
});

t.test('a small frame cannot declare a huge output', async (t) => {
  const zeros = Buffer.alloc(8 << 20);
  const frame = encodeFrame(zeros);
  t.ok(frame.length < 64 << 10, 'eight MiB of zeros compress to a small frame');
  t.throws(() => decodeFrame(frame, 1 << 20), /declares 8388608 bytes of content, more than the limit of 1048576/);
  t.equal(readFrameHeader(frame).contentSize, 8 << 20);
});

t.test('helpers', async (t) => {
  t.equal(xxhash32(Buffer.alloc(0)), 0x02cc5d05, 'xxh32 of the empty input');
  t.equal(xxhash32(Buffer.from('abc')), 0x32d153ff, 'xxh32 of "abc"');
  t.equal(xxhash32(Buffer.from('Nobody inspects the spammish repetition')), 0xe2293b2f);
  t.ok(isAllZero(Buffer.alloc(3 << 20)));
  const almost = Buffer.alloc(3 << 20);
  almost[almost.length - 1] = 1;
  t.notOk(isAllZero(almost));
  t.equal(parseChunkSize('1M'), 1 << 20);
  t.equal(parseChunkSize('256K'), 256 << 10);
  t.equal(parseChunkSize('4MiB'), 4 << 20);
  t.throws(() => parseChunkSize('3M'), /power of two/);
  t.throws(() => parseChunkSize('16M'), /256 KiB to 8 MiB/);
});
