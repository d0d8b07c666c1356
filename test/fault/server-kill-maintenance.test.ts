// The server killed with SIGKILL during garbage collection and during prune: nothing an
// image still references is removed, and a later run of each completes.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { assertNothingLost, changeDisk, FaultRig, startRelay, succeeded, waitFor } from './helpers.js';

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
  const interrupted = await b365(['prune', '--machine', 'pruned', '--json'], {
    env: { ...rig.env, B365_SERVER: relay.url, B365_RETRY_FOR_MS: '500' },
  });
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
