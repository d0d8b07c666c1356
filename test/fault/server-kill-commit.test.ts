// The server killed with SIGKILL around a commit, placed exactly by a relay: as the
// commit request arrives (before it is handled) and after it committed but before its
// answer left. The client's retried commit ends with exactly one whole image.
import t from 'tap';
import { assertNothingLost, FaultRig, isCommitRequest, startRelay, succeeded } from './helpers.js';

t.test('killed as the commit arrives, before it is handled: the client retries it after the restart', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('early');
  let restarted: Promise<void> | null = null;
  const relay = await startRelay(t, () => rig.server.url, {
    async beforeForward(request) {
      if (!isCommitRequest(request) || restarted) return;
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
      if (!isCommitRequest(request) || restarted || status >= 300) return 'deliver';
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
  t.same(
    images.map((image) => image.id),
    [result.json.image],
    'the client reports the one image the server committed',
  );
  await assertNothingLost(t, rig);
});
