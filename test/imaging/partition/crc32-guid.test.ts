// GPT's CRC32 (zlib's) against Python's zlib and against the checksums sgdisk writes, and
// GUIDs in GPT's mixed-endian byte order against the bytes the UEFI specification gives
// for the EFI system partition type.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import t from 'tap';
import { encodeGptHeader, GPT_HEADER_SIZE, parseGptHeader } from '../../../imaging/partition/gpt.js';
import { decodeGuid, encodeGuid } from '../../../imaging/partition/guid.js';
import { MiB, makeImageFile, run } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';

const SECTOR = 512;

t.test('crc32 matches Python zlib', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the check value of CRC-32/ISO-HDLC');
  t.equal(crc32(Buffer.alloc(0)), 0);
  const samples = [Buffer.alloc(92), Buffer.alloc(16384, 0xff), randomBytes(1), randomBytes(513), randomBytes(16384)];
  const script = 'import sys, zlib\nfor line in sys.stdin: print(zlib.crc32(bytes.fromhex(line.strip())))';
  const input = `${samples.map((sample) => sample.toString('hex')).join('\n')}\n`;
  const expected = (await run('python3', ['-c', script], { input })).split('\n').map(Number);
  t.same(
    samples.map((sample) => crc32(sample)),
    expected,
  );
  const whole = randomBytes(1000);
  t.equal(crc32(whole.subarray(300), crc32(whole.subarray(0, 300))), crc32(whole), 'continues an earlier run');
});

t.test('header and entry checksums are the ones sgdisk writes', async (t) => {
  const image = path.join(await tempDir(t), 'gpt.img');
  await makeImageFile(image, 8 * MiB);
  await run('sgdisk', ['-o', '-n', '1:2048:+2M', '-c', '1:data', '-n', '2:0:0', '-t', '2:ef00', image]);
  const disk = await fs.readFile(image);
  const headerSector = disk.subarray(SECTOR, 2 * SECTOR);
  const header = parseGptHeader(Buffer.from(headerSector), 1, SECTOR);
  if (typeof header === 'string') throw new Error(`sgdisk's header was refused: ${header}`);
  const entriesStart = header.entriesLba * SECTOR;
  const entries = disk.subarray(entriesStart, entriesStart + header.entryCount * header.entrySize);
  t.equal(crc32(entries), header.entriesCrc, 'entry array CRC as sgdisk stored it');
  const encoded = encodeGptHeader(header, SECTOR);
  t.equal(encoded.readUInt32LE(16), headerSector.readUInt32LE(16), 'header CRC as sgdisk stored it');
  t.ok(encoded.subarray(0, GPT_HEADER_SIZE).equals(headerSector.subarray(0, GPT_HEADER_SIZE)), 'same header bytes');
});

t.test('GUIDs in GPT byte order', async (t) => {
  const stored = Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex');
  t.equal(decodeGuid(stored), 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b');
  const written = Buffer.alloc(20);
  encodeGuid('C12A7328-F81F-11D2-BA4B-00A0C93EC93B', written, 4);
  t.ok(written.subarray(4).equals(stored), 'upper case text encodes to the same bytes');
  t.throws(() => encodeGuid('c12a7328-f81f-11d2-ba4b-00a0c93ec93', written), { name: 'FormatError' });
});
