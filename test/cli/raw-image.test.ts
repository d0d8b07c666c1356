// Raw capture and restore through the real CLI and a real server: the first path
// through the whole system.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

t.test('a 1 GiB source: full, unchanged, then 10 MiB changed', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'disk.img');
  await writeLargeDistinctFile(source, 1024 * MiB, 11);
  // Make part of it sparse: holes are neither read nor sent.
  const handle = await fs.open(source, 'r+');
  await handle.truncate(1200 * MiB);
  await handle.close();

  const first = await b365(['image', source, '--machine', 'raw1', '--json'], { env: server.env });
  t.equal(first.exitCode, 0, first.stderr);
  const report = first.json;
  for (const field of ['image', 'bytesRead', 'bytesUploaded', 'chunksUploaded', 'chunksReused', 'durationMs'])
    t.ok(field in report, `report has ${field}`);
  t.equal(report.parent, null);
  t.ok(report.chunksUploaded >= 1000, `first image uploads every distinct chunk (${report.chunksUploaded})`);
  t.equal(report.bytesRead, 1024 * MiB, 'the sparse tail was not read');

  const unchanged = await b365(['image', source, '--machine', 'raw1', '--json'], { env: server.env });
  t.equal(unchanged.exitCode, 0, unchanged.stderr);
  t.equal(unchanged.json.chunksUploaded, 0, 'unchanged source uploads 0 chunks');
  t.equal(unchanged.json.bytesUploaded, 0);
  t.equal(unchanged.json.parent, report.image, 'the previous image is the base');

  // Change 10 MiB in three regions that do not line up with chunks.
  const regions = [
    { offset: 100 * MiB + 12345, length: 4 * MiB },
    { offset: 500 * MiB + 777, length: 3 * MiB },
    { offset: 900 * MiB + 4096, length: 3 * MiB },
  ];
  const writer = await fs.open(source, 'r+');
  for (const region of regions)
    await writer.write(Buffer.alloc(region.length, 0xa5 ^ region.length), 0, region.length, region.offset);
  await writer.close();
  const changed = await b365(['image', source, '--machine', 'raw1', '--json'], { env: server.env });
  t.equal(changed.exitCode, 0, changed.stderr);
  const chunkSize = (await b365(['images', 'show', changed.json.image, '--json'], { env: server.env })).stdout.match(
    /"chunkSize": (\d+)/,
  )![1];
  const bound = 10 * MiB + regions.length * Number(chunkSize);
  t.ok(
    changed.json.chunksUploaded * Number(chunkSize) <= bound,
    `uploaded ${changed.json.chunksUploaded} chunks of ${chunkSize} bytes: at most 10 MiB plus one chunk per region`,
  );
  t.ok(changed.json.chunksUploaded >= 1, 'the change was sent');

  const target = path.join(directory, 'restored.img');
  const restore = await b365(['restore', 'raw1@latest', '--to', target, '--json'], { env: server.env });
  t.equal(restore.exitCode, 0, restore.stderr);
  t.equal(restore.json.verified, true);
  t.equal(await b3sum(target), await b3sum(source), 'restored bytes hash like the source (b3sum)');
  const stats = await fs.stat(target);
  t.ok(stats.blocks * 512 < stats.size, 'holes stay holes in the restored file');

  const list = await b365(['images', '--machine', 'raw1', '--json'], { env: server.env });
  t.equal(list.json.images.length, 3);
  const human = await b365(['images'], { env: server.env });
  t.match(human.stdout, /raw1@\d{8}T\d{6}Z/);
});

t.test('clear errors from the CLI', async (t) => {
  const server = await startServer(t);
  const missing = await b365(['image', '/nonexistent/disk.img', '--machine', 'x'], { env: server.env });
  t.equal(missing.exitCode, 4);
  t.match(missing.stderr, /\/nonexistent\/disk.img does not exist/);
  const badName = await b365(['image', '/dev/null', '--machine', 'bad name!'], { env: server.env });
  t.equal(badName.exitCode, 2);
  t.match(badName.stderr, /invalid machine name/);
  const noToken = await b365(['images'], { env: { B365_SERVER: server.url } });
  t.equal(noToken.exitCode, 2);
  t.match(noToken.stderr, /no token/);
  const unknown = await b365(['restore', 'ghost@latest', '--to', '/tmp/never-written', '--json'], { env: server.env });
  t.equal(unknown.exitCode, 4);
  t.equal(unknown.json.error.code, 'not_found');
  const down = await b365(['images'], {
    env: { ...server.env, B365_SERVER: 'http://127.0.0.1:9', B365_RETRY_FOR_MS: '500' },
  });
  t.equal(down.exitCode, 7);
  t.match(down.stderr, /cannot reach the server at http:\/\/127.0.0.1:9/);
});
