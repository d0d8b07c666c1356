// CRC-32 against Python's zlib, and GUIDs in GPT's mixed-endian byte order against
// the bytes the UEFI specification gives for the EFI system partition type.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { crc32 } from '../../../imaging/partition/crc32.js';
import { decodeGuid, encodeGuid } from '../../../imaging/partition/guid.js';
import { run } from '../../helpers/disk.js';

t.test('crc32 matches zlib', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the check value of CRC-32/ISO-HDLC');
  t.equal(crc32(Buffer.alloc(0)), 0);
  const samples = [Buffer.alloc(92), Buffer.alloc(16384, 0xff), randomBytes(1), randomBytes(513), randomBytes(16384)];
  const script = 'import sys, zlib\nfor line in sys.stdin: print(zlib.crc32(bytes.fromhex(line.strip())))';
  const expected = (
    await run('python3', ['-c', script], { input: `${samples.map((sample) => sample.toString('hex')).join('\n')}\n` })
  )
    .split('\n')
    .map(Number);
  t.same(
    samples.map((sample) => crc32(sample)),
    expected,
  );
  const whole = randomBytes(1000);
  t.equal(crc32(whole.subarray(300), crc32(whole.subarray(0, 300))), crc32(whole), 'continues an earlier run');
});

t.test('GUIDs in GPT byte order', async (t) => {
  const stored = Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex');
  t.equal(decodeGuid(stored), 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b');
  const written = Buffer.alloc(20);
  encodeGuid('C12A7328-F81F-11D2-BA4B-00A0C93EC93B', written, 4);
  t.ok(written.subarray(4).equals(stored), 'upper case text encodes to the same bytes');
  t.throws(() => encodeGuid('c12a7328-f81f-11d2-ba4b-00a0c93ec93', written), { name: 'FormatError' });
});
