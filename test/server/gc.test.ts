// Prune and garbage collection through the CLI against a real server process, with a
// real capture (`b365 image`) uploading while the collection runs.
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { startServer } from '../helpers/server.js';
import { assertStoreIntact, storedChunks } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

async function randomDisk(file: string, megabytes: number): Promise<void> {
  const data = Buffer.alloc(megabytes * MiB);
  randomFillSync(data);
  await fs.writeFile(file, data);
}

t.test('prune and gc from the command line; a backup running during gc commits', async (t) => {
  const base = await tempDir(t, 'b365-gc-');
  const server = await startServer(t);
  const env = server.env;
  const first = path.join(base, 'first.img');
  const second = path.join(base, 'second.img');
  await randomDisk(first, 8);
  await randomDisk(second, 8);

  const imageOf = async (file: string) => {
    const result = await b365(['image', file, '--machine', 'alpha', '--raw', '--chunk-size', '256K', '--json'], {
      env,
    });
    t.equal(result.exitCode, 0, result.stderr);
    return result.json;
  };
  const older = await imageOf(first);
  await sleep(1100); // image names have a resolution of one second
  const newer = await imageOf(second);
  const onlyOlder = new Set(await storedChunks(server.repo));

  const machineToken = (
    await api(server.url, 'POST', '/tokens', { token: server.adminToken, json: { role: 'machine', machine: 'alpha' } })
  ).body.token as string;
  t.equal(
    (await b365(['prune'], { env: { ...env, B365_TOKEN: machineToken } })).exitCode,
    6,
    'a machine token cannot prune',
  );
  t.equal((await b365(['gc'], { env: { ...env, B365_TOKEN: machineToken } })).exitCode, 6, 'nor collect garbage');

  t.equal(
    (
      await b365(
        [
          'policy',
          'set',
          'alpha',
          '--keep-last',
          '1',
          '--keep-daily',
          '0',
          '--keep-weekly',
          '0',
          '--keep-monthly',
          '0',
        ],
        { env },
      )
    ).exitCode,
    0,
  );
  const dry = await b365(['prune', '--dry-run', '--json'], { env });
  t.same(dry.json.machines[0].removed, [older.image]);
  t.equal(
    (await api(server.url, 'GET', `/images/${encodeURIComponent(older.image)}`, { token: server.adminToken })).status,
    200,
    'a dry run removes nothing',
  );
  const pruned = await b365(['prune', '--json'], { env });
  t.same(pruned.json.machines[0].removed, [older.image]);
  t.same(pruned.json.machines[0].kept, [{ id: newer.image, reason: 'last' }]);

  // While a large capture uploads, collect with no grace period at all.
  const big = path.join(base, 'big.img');
  await randomDisk(big, 192);
  const before = new Set(await storedChunks(server.repo));
  const capture = b365(['image', big, '--machine', 'alpha', '--raw', '--chunk-size', '256K', '--json'], { env });
  for (let waited = 0; (await storedChunks(server.repo)).length < before.size + 40; waited++) {
    if (waited > 400) throw new Error('the capture did not start uploading');
    await sleep(50);
  }
  const gc = await b365(['gc', '--grace', '0s', '--json'], { env });
  t.equal(gc.exitCode, 0, gc.stderr);
  t.equal(gc.json.state, 'done');
  t.ok(
    gc.json.report.keptPinned >= 40,
    `chunks the open upload session had sent were spared (${gc.json.report.keptPinned})`,
  );
  const captured = await capture;
  t.equal(captured.exitCode, 0, captured.stderr);
  t.ok(captured.json.chunksUploaded > 0);

  // Chunks only the pruned image used are gone; nothing else is.
  const after = new Set(await storedChunks(server.repo));
  const olderChunks = [...onlyOlder].filter((digest) => !after.has(digest));
  t.ok(olderChunks.length >= 32, `the pruned image's own chunks were removed (${olderChunks.length})`);
  t.equal(gc.json.report.removed, olderChunks.length, 'exactly those');
  t.ok(gc.json.report.bytesReclaimed >= 8 * MiB, `reclaimed ${gc.json.report.bytesReclaimed} bytes`);
  t.same((await assertStoreIntact(server.repo)).bad, []);

  // Both remaining images are whole: every referenced chunk is present and sound.
  const verify = await b365(['verify', '--all', '--level', 'content', '--json'], { env });
  t.equal(verify.exitCode, 0, `content verification of both images passes ${verify.stderr}`);
  const images = (await api(server.url, 'GET', '/images?machine=alpha', { token: server.adminToken })).body.images;
  t.same(images.map((image: { id: string }) => image.id).sort(), [newer.image, captured.json.image].sort());

  const history = await b365(['gc', '--dry-run', '--grace', '0s', '--json'], { env });
  t.equal(history.json.report.removed, 0, 'a second pass finds nothing to remove');
  const metrics = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.adminToken}` } });
  t.match(await metrics.text(), new RegExp(`^b365_gc_reclaimed_bytes_total ${gc.json.report.bytesReclaimed}$`, 'm'));
});
