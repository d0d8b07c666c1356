// Sizes and durations as every command, report and notice prints them.
import t from 'tap';
import { formatBytes, formatDuration } from '../../src/core/units.js';

t.test('sizes in binary units with one decimal, bytes whole', async (t) => {
  t.equal(formatBytes(0), '0 B');
  t.equal(formatBytes(1023), '1023 B');
  t.equal(formatBytes(1024), '1.0 KiB');
  t.equal(formatBytes(20 * 2 ** 20), '20.0 MiB');
  t.equal(formatBytes(1.5 * 2 ** 30), '1.5 GiB');
  t.equal(formatBytes(2 * 2 ** 40), '2.0 TiB');
  t.equal(formatBytes(3 * 2 ** 50), '3.0 PiB', 'a repository of petabytes reads in PiB');
});

t.test('durations from milliseconds to minutes', async (t) => {
  t.equal(formatDuration(250), '250 ms');
  t.equal(formatDuration(1500), '1.5 s');
  t.equal(formatDuration(185_000), '3 min 5 s');
});
