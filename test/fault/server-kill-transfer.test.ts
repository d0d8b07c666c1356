// The server killed with SIGKILL while data moves: while an image's chunks arrive and
// while a restore reads. After the restart the client's own retries finish the job, and
// everything committed verifies and restores byte for byte.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { CLI_MAIN } from '../helpers/cli.js';
import { MiB } from '../helpers/disk.js';
import { assertNothingLost, FaultRig, succeeded, waitFor } from './helpers.js';

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
  const restore = execa(process.execPath, [CLI_MAIN, 'restore', 'restored@latest', '--to', target, '--yes', '--json'], {
    env: { B365_LOG_LEVEL: 'error', ...rig.env },
    reject: false,
  });
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
