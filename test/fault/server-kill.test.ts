// The server killed with SIGKILL at the points where a crash hurts most: while chunks
// arrive, during a restore, as a commit arrives, after a commit but before its answer
// left, during garbage collection and during prune. After a restart the client's retries
// (or its rerun) finish, and everything committed verifies and restores byte for byte.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { MiB } from '../helpers/disk.js';
import { assertNothingLost, changeDisk, FaultRig, startRelay, succeeded, waitFor } from './helpers.js';

const isCommit = (request: { method: string; path: string }) => request.method === 'POST' && /\/sessions\/[^/]+\/commit$/.test(request.path);

t.test('killed while chunks arrive: the client waits, resumes and commits', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('busy', { dataMiB: 64 });
  const client = await rig.startImage(disk, 'busy');
  await rig.waitForChunks(20);
  await rig.server.kill();
  await rig.server.restart();
  const result = await client.done();
  succeeded(t, result, 'b365 image succeeds');
  await assertNothingLost(t, rig);
});

t.test('killed during a restore: the restore retries, completes and verifies', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('restored', { dataMiB: 96 });
  succeeded(t, await rig.image(disk, 'restored'), 'image');
  const target = path.join(rig.directory, 'target.img');
  const restore = execa(process.execPath, [CLI_MAIN, 'restore', 'restored@latest', '--to', target, '--yes', '--json'], { env: { B365_LOG_LEVEL: 'error', ...rig.env }, reject: false });
  await waitFor('the restore to write 16 MiB', async () => {
    const stats = await fs.stat(target).catch(() => null);
    return stats !== null && stats.blocks * 512 >= 16 * MiB;
  });
  await rig.server.kill();
  await rig.server.restart();
  const result = await restore;
  t.equal(result.exitCode, 0, 'the restore completes', { stderr: String(result.stderr).slice(-3000) });
  t.equal(JSON.parse(String(result.stdout) || '{}').verified, true, 'and verifies what it wrote');
  t.equal(await b3sum(target), await b3sum(disk.file), 'the target hashes like the source');
  await assertNothingLost(t, rig);
});

t.test('killed as the commit arrives, before it is handled: the client retries it after the restart', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('early');
  let restarted: Promise<void> | null = null;
  const relay = await startRelay(t, () => rig.server.url, {
    async beforeForward(request) {
      if (!isCommit(request) || restarted) return;
      await rig.server.kill();
      restarted = rig.server.restart();
      throw new Error('the server is down');
    },
  });
  const result = await rig.image(disk, 'early', { env: { B365_SERVER: relay.url } });
  t.ok(restarted, 'the server was killed as the commit arrived');
  await restarted;
  succeeded(t, result, 'b365 image succeeds');
  t.equal((await rig.images()).length, 1, 'exactly one image');
  await assertNothingLost(t, rig);
});

t.test('killed after committing, before the answer left: the retried commit names the same image', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('late');
  let restarted: Promise<void> | null = null;
  const relay = await startRelay(t, () => rig.server.url, {
    async afterAnswer(request, status) {
      if (!isCommit(request) || restarted || status >= 300) return 'deliver';
      await rig.server.kill();
      restarted = rig.server.restart();
      return 'drop';
    },
  });
  const result = await rig.image(disk, 'late', { env: { B365_SERVER: relay.url } });
  t.ok(restarted, 'the server was killed with the commit done and its answer unsent');
  await restarted;
  succeeded(t, result, 'b365 image succeeds');
  const images = await rig.images();
  t.same(images.map((image) => image.id), [result.json.image], 'the client reports the one image the server committed');
  await assertNothingLost(t, rig);
});

t.test('killed during garbage collection: nothing referenced is removed, a later collection finishes', async (t) => {
  const rig = await FaultRig.start(t);
  const kept = await rig.disk('kept');
  const dropped = await rig.disk('dropped', { dataMiB: 48 });
  t.equal((await rig.image(kept, 'kept')).exitCode, 0);
  const doomed = await rig.image(dropped, 'dropped');
  t.equal(doomed.exitCode, 0);
  t.equal((await b365(['images', 'delete', doomed.json.image], { env: rig.env })).exitCode, 0);
  rig.committed.delete(doomed.json.image);
  const before = await rig.storedChunkCount();
  const gc = await b365(['gc', '--grace', '0s', '--no-wait', '--json'], { env: rig.env });
  succeeded(t, gc, 'gc starts');
  // Kill as soon as the collection has removed something (or finished: it is quick).
  await waitFor('the collection to start removing', async () => (await rig.storedChunkCount()) < before);
  await rig.server.kill();
  await rig.server.restart();
  const jobs = await b365(['gc', '--grace', '0s', '--json'], { env: rig.env });
  succeeded(t, jobs, 'gc after the restart');
  t.equal(jobs.json.state, 'done', 'a collection after the restart finishes');
  await assertNothingLost(t, rig);
});

t.test('killed during prune: the kept images survive, a second prune completes', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('pruned');
  for (let round = 0; round < 3; round++) {
    if (round > 0) await changeDisk(t, disk);
    t.equal((await rig.image(disk, 'pruned')).exitCode, 0);
  }
  t.equal((await b365(['policy', 'set', 'pruned', '--keep-last', '1'], { env: rig.env })).exitCode, 0);
  const manifests = path.join(rig.server.repo, 'images', 'pruned');
  let killed = false;
  const relay = await startRelay(t, () => rig.server.url, {
    async beforeForward(request) {
      if (request.method !== 'POST' || !request.path.endsWith('/prune') || killed) return;
      // Kill once the prune has removed a manifest, or as it answers, whichever is first.
      void waitFor('a manifest removed', async () => (await fs.readdir(manifests)).length < 3 || killed, 30_000)
        .then(async () => {
          if (!killed) {
            killed = true;
            await rig.server.kill();
          }
        })
        .catch(() => undefined);
    },
    async afterAnswer(request) {
      if (request.method !== 'POST' || !request.path.endsWith('/prune') || killed) return 'deliver';
      killed = true;
      await rig.server.kill();
      return 'drop';
    },
  });
  const interrupted = await b365(['prune', '--machine', 'pruned', '--json'], { env: { ...rig.env, B365_SERVER: relay.url, B365_RETRY_FOR_MS: '500' } });
  t.not(interrupted.exitCode, 0, 'the interrupted prune did not report success');
  await waitFor('the kill', () => killed);
  if (rig.server.process.exitCode === null) await rig.server.process;
  await rig.server.restart();
  const pruned = await b365(['prune', '--machine', 'pruned', '--json'], { env: rig.env });
  succeeded(t, pruned, 'prune after the restart');
  const images = await rig.images();
  t.equal(images.length, 1, 'keep-last 1 leaves one image');
  const newest = [...rig.committed.keys()].sort().pop()!;
  t.equal(images[0]?.id, newest, 'the newest image is the one kept');
  for (const id of [...rig.committed.keys()]) if (id !== newest) rig.committed.delete(id);
  await assertNothingLost(t, rig);
});
