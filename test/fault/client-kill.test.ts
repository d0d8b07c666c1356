// The client killed with SIGKILL: in the middle of an upload, while its commit is in
// flight (before and after the server handled it), and in the middle of writing a
// restore. A rerun finishes the job; nothing committed is lost or wrong.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { MiB } from '../helpers/disk.js';
import { assertNothingLost, FaultRig, isCommitRequest, startRelay, succeeded, waitFor } from './helpers.js';

t.test('killed mid-upload: the rerun resumes the session and commits', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('victim', { dataMiB: 64 });
  const first = await rig.startImage(disk, 'victim');
  await rig.waitForChunks(20);
  first.child.kill('SIGKILL');
  const killed = await first.done();
  t.not(killed.exitCode, 0, 'the killed run did not report success');
  const rerun = await rig.image(disk, 'victim');
  succeeded(t, rerun, 'the rerun commits');
  t.equal(rerun.json.resumed, true, 'it resumed the interrupted session');
  await assertNothingLost(t, rig);
});

for (const moment of ['before the server saw it', 'after the server committed it'] as const) {
  t.test(`killed while its commit is in flight, ${moment}: the rerun ends with a whole image`, async (t) => {
    const rig = await FaultRig.start(t);
    const disk = await rig.disk('committer');
    let client: Awaited<ReturnType<FaultRig['startImage']>> | null = null;
    let killed = false;
    const kill = async () => {
      killed = true;
      client!.child.kill('SIGKILL');
      await client!.done();
    };
    const relay = await startRelay(t, () => rig.server.url, {
      async beforeForward(request) {
        if (moment !== 'before the server saw it' || !isCommitRequest(request) || killed) return;
        await kill();
        throw new Error('the client is gone');
      },
      async afterAnswer(request) {
        if (moment !== 'after the server committed it' || !isCommitRequest(request) || killed) return 'deliver';
        await kill();
        return 'drop';
      },
    });
    client = await rig.startImage(disk, 'committer', { env: { B365_SERVER: relay.url } });
    await waitFor('the kill at commit', () => killed, 120_000);
    const listedAfterKill = (await rig.images()).length;
    t.equal(
      listedAfterKill,
      moment === 'before the server saw it' ? 0 : 1,
      'an image exists only if the server handled the commit',
    );
    const rerun = await rig.image(disk, 'committer');
    succeeded(t, rerun, 'the rerun succeeds');
    await assertNothingLost(t, rig);
  });
}

t.test('killed mid-restore: the disk is left partly written, a rerun completes and verifies', async (t) => {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk('source', { dataMiB: 96 });
  succeeded(t, await rig.image(disk, 'source'), 'image');
  const target = path.join(rig.directory, 'target.img');
  const restore = execa(process.execPath, [CLI_MAIN, 'restore', 'source@latest', '--to', target, '--yes', '--json'], {
    env: { B365_LOG_LEVEL: 'warn', ...rig.env },
    reject: false,
  });
  // Allocated bytes of the target grow as the restore writes.
  await waitFor('the restore to write 16 MiB', async () => {
    const stats = await fs.stat(target).catch(() => null);
    return stats !== null && stats.blocks * 512 >= 16 * MiB;
  });
  restore.kill('SIGKILL');
  await restore;
  t.not(await b3sum(target), await b3sum(disk.file), 'the killed restore left the target incomplete');
  const rerun = await b365(['restore', 'source@latest', '--to', target, '--yes', '--json'], { env: rig.env });
  succeeded(t, rerun, 'the rerun completes');
  t.equal(rerun.json.verified, true, 'and verifies what it wrote');
  t.equal(await b3sum(target), await b3sum(disk.file), 'the target now hashes like the source');
  await assertNothingLost(t, rig);
});
