import { execa } from 'execa';
import t from 'tap';
import { digestOf } from '../../src/format/digest.js';
import { FixedIndex, INDEX_HEADER_BYTES } from '../../src/format/fixed-index.js';

const a = digestOf(Buffer.from('chunk a'));
const b = digestOf(Buffer.from('chunk b'));

t.test('golden index: layout and root digest', async (t) => {
  const index = new FixedIndex(1 << 20, 3.5 * (1 << 20));
  t.equal(index.chunkCount, 4);
  t.equal(index.chunkLength(3), 512 << 10, 'the last chunk is short');
  index.set(0, a);
  index.set(2, b);
  index.set(3, a);
  const bytes = index.encode();
  t.equal(bytes.length, INDEX_HEADER_BYTES + 4 * 32);
  t.equal(
    bytes.subarray(0, 32).toString('hex'),
    '4233363546494458' + '01000000' + '00001000' + '0000380000000000' + '0400000000000000',
    'header: magic, version, chunk size, volume size, count',
  );
  t.equal(
    index.digest(),
    '37ff79003aa84a4c4a895b39359e1bd6089b29bcc4f0efb3d19cfdbe3ac0141d',
    'root digest is the recorded one',
  );
  const { stdout } = await execa('b3sum', ['--no-names'], { input: bytes });
  t.equal(stdout.trim(), index.digest(), 'b3sum of the index bytes is its root digest');
  const parsed = FixedIndex.parse(bytes);
  t.equal(parsed.get(0), a);
  t.equal(parsed.get(1), null, 'zero digest is a hole');
  t.same(parsed.distinctDigests(), [a, b]);
  t.equal(parsed.holeCount(), 1);
});

t.test('malformed indexes are refused with the reason', async (t) => {
  const index = new FixedIndex(1 << 20, 4 << 20);
  const bytes = index.encode();
  t.throws(() => FixedIndex.parse(bytes.subarray(0, 10)), /truncated header/);
  const magic = Buffer.from(bytes);
  magic[0] = 0;
  t.throws(() => FixedIndex.parse(magic), /bad magic/);
  t.throws(() => FixedIndex.parse(bytes.subarray(0, bytes.length - 1)), /expected 192 for 4 entries/);
  const count = Buffer.from(bytes);
  count.writeBigUInt64LE(5n, 24);
  t.throws(() => FixedIndex.parse(count), /header says 5 chunks, a 4194304-byte volume has 4/);
  const size = Buffer.from(bytes);
  size.writeUInt32LE(3 << 20, 12);
  t.throws(() => FixedIndex.parse(size), /invalid chunk size/);
});
