// Counts read as English: "1 file", "0 files", "2 directories".
import t from 'tap';
import { plural } from '../../src/core/plural.js';

t.test('singular for exactly one, plural otherwise', async (t) => {
  t.equal(plural(1, 'file'), '1 file');
  t.equal(plural(0, 'file'), '0 files');
  t.equal(plural(2, 'chunk'), '2 chunks');
  t.equal(plural(1, 'directory', 'directories'), '1 directory');
  t.equal(plural(3, 'directory', 'directories'), '3 directories');
});
