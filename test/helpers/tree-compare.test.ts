// The tree oracle itself must see a difference: a changed field, a time off by less than
// the resolution asked for (not reported) or more (reported), a missing or extra path.
import t from 'tap';
import { differences, type FactsByPath, type FileFacts } from './tree-compare.js';

const file: FileFacts = {
  type: 'file',
  size: 5,
  mode: 0o644,
  uid: 0,
  gid: 0,
  nlink: 1,
  inode: 64,
  mtimeNs: '1614834367123456789',
  ctimeNs: '1614834367123456789',
  atimeNs: '1614834367123456789',
  sha256: 'a'.repeat(64),
};
const walk = (facts: FileFacts): FactsByPath => new Map([['/a', facts]]);

t.test('equal walks have no differences', async (t) => {
  t.same(differences(walk(file), walk({ ...file })), []);
});

t.test('a changed field, content or extra field is named with both values', async (t) => {
  t.same(differences(walk(file), walk({ ...file, mode: 0o600 })), ['/a: mode is 384, expected 420']);
  t.same(differences(walk(file), walk({ ...file, sha256: 'b'.repeat(64) })), [
    `/a: sha256 is "${'b'.repeat(64)}", expected "${'a'.repeat(64)}"`,
  ]);
  t.same(differences(walk(file), walk({ ...file, target: 'x' })), ['/a: target is "x", expected undefined']);
});

t.test('times are compared to the resolution asked for', async (t) => {
  const later = { ...file, mtimeNs: '1614834367123456999' };
  t.same(differences(walk(file), walk(later)), [
    '/a: mtimeNs is "1614834367123456999", expected "1614834367123456789"',
  ]);
  t.same(differences(walk(file), walk(later), { timeResolutionNs: 1000n }), [], 'same microsecond');
  const nextMicrosecond = { ...file, mtimeNs: '1614834367123457789' };
  t.equal(differences(walk(file), walk(nextMicrosecond), { timeResolutionNs: 1000n }).length, 1, 'next microsecond');
});

t.test('missing and unexpected paths', async (t) => {
  const expected: FactsByPath = new Map([
    ['/a', file],
    ['/b', file],
  ]);
  const actual: FactsByPath = new Map([
    ['/a', file],
    ['/c', file],
  ]);
  t.same(differences(expected, actual), ['/b: missing', '/c: unexpected']);
});
