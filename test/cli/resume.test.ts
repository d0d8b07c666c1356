// Crashes in the middle of an upload: the server killed and restarted under a running
// client, and the client killed and run again. Nothing half-written may appear.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { assertStoreIntact, storedChunks } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

async function waitForChunks(repo: string, count: number, timeoutMs = 120_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const stored = (await storedChunks(repo)).length;
    if (stored >= count) return stored;
    if (Date.now() - started > timeoutMs) throw new Error(`only ${stored} chunks stored after ${timeoutMs} ms`);
    await sleep(20);
  }
}

t.test('server killed with SIGKILL during an upload: the client waits, resumes and commits', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'disk.img');
  await writeLargeDistinctFile(source, 512 * MiB, 21);
  const client = execa(process.execPath, [CLI_MAIN, 'image', source, '--machine', 'crashy', '--json'], {
    env: { ...server.env, B365_LOG_LEVEL: 'warn' },
    reject: false,
  });
  await waitForChunks(server.repo, 150);
  await server.kill();
  await sleep(1500);
  await server.restart();
  const result = await client;
  t.equal(result.exitCode, 0, String(result.stderr));
  const report = JSON.parse(String(result.stdout));
  t.match(report.image, /^crashy@/);
  const intact = await assertStoreIntact(server.repo);
  t.same(
    intact.bad,
    [],
    `every one of ${intact.objects} stored objects decodes to its name: no partial file under a final name`,
  );
  const target = path.join(directory, 'restored.img');
  const restore = await b365(['restore', report.image, '--to', target], { env: server.env });
  t.equal(restore.exitCode, 0, restore.stderr);
  t.equal(await b3sum(target), await b3sum(source));
});

t.test('client killed with SIGKILL: a rerun resumes the session and sends nothing twice', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'disk.img');
  await writeLargeDistinctFile(source, 512 * MiB, 22);
  const first = execa(process.execPath, [CLI_MAIN, 'image', source, '--machine', 'victim', '--json'], {
    env: server.env,
    reject: false,
  });
  await waitForChunks(server.repo, 200);
  first.kill('SIGKILL');
  await first;
  // Uploads whose body had fully arrived still complete on the server: wait for quiet.
  let storedBefore = (await storedChunks(server.repo)).length;
  for (;;) {
    await sleep(700);
    const now = (await storedChunks(server.repo)).length;
    if (now === storedBefore) break;
    storedBefore = now;
  }
  t.ok(storedBefore >= 200 && storedBefore < 2000, `${storedBefore} chunks stored before the kill`);

  const rerun = await b365(['image', source, '--machine', 'victim', '--json'], { env: server.env });
  t.equal(rerun.exitCode, 0, rerun.stderr);
  t.equal(rerun.json.resumed, true, 'the rerun resumed the interrupted session');
  const distinct = rerun.json.chunksTotal - rerun.json.chunksHoles;
  t.equal(
    rerun.json.chunksUploaded + storedBefore,
    distinct + 0,
    `chunks sent again: none (${rerun.json.chunksUploaded} new + ${storedBefore} earlier = ${distinct})`,
  );
  const stored = await storedChunks(server.repo);
  t.equal(stored.length, distinct + 1, 'the store holds each chunk once, plus the index');
  const target = path.join(directory, 'restored.img');
  t.equal((await b365(['restore', 'victim@latest', '--to', target], { env: server.env })).exitCode, 0);
  t.equal(await b3sum(target), await b3sum(source));
});
