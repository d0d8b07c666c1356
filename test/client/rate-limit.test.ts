// `b365 image --limit-rate` against a real server: uploads wrapped in the token bucket
// take as long as the rate says (an unthrottled upload of the same bytes on loopback takes
// a fraction of a second), and the rate is read the one way sizes are read.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ExitCode } from '../../src/core/errors.js';
import { b365 } from '../helpers/cli.js';
import { Prng } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;
const RATE = 1 * MiB;

t.test('uploads are held to --limit-rate', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'disk.img');
  const content = Buffer.alloc(6 * MiB);
  new Prng(7).fill(content);
  await fs.writeFile(source, content);

  const limited = await b365(['image', source, '--machine', 'slow-link', '--raw', '--limit-rate', '1M', '--json'], {
    env: server.env,
  });
  t.equal(limited.exitCode, 0, limited.stderr);
  const { bytesUploaded, durationMs } = limited.json as { bytesUploaded: number; durationMs: number };
  t.ok(bytesUploaded >= 6 * MiB, `${bytesUploaded} bytes uploaded`);
  // One quarter-second burst may go at once; the rest waits for the bucket.
  const floorMs = ((bytesUploaded - RATE / 4) / RATE) * 1000;
  t.ok(durationMs >= floorMs * 0.95, `took ${durationMs} ms, the rate allows no less than ${Math.round(floorMs)} ms`);
  t.ok(durationMs < floorMs * 3 + 10_000, `took ${durationMs} ms, not stalled far beyond the rate`);

  const bad = await b365(['image', source, '--machine', 'slow-link', '--raw', '--limit-rate', 'fast'], {
    env: server.env,
  });
  t.equal(bad.exitCode, ExitCode.usage);
  t.equal(bad.stderr, 'b365: --limit-rate takes a size such as 20M, 512K or 1G, got "fast"\n');
});
