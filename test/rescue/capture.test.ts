// Offline capture with `b365 rescue --unattended` on this host: a loop device imaged
// with a token restores to the same bytes; a restore code, which cannot write images,
// is refused.
import path from 'node:path';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { attachLoop, MiB } from '../helpers/disk.js';
import { createRestoreCode, rescueUnattended, resultOf } from '../helpers/rescue.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('capture', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const sourceFile = path.join(directory, 'source.img');
  await writeLargeDistinctFile(sourceFile, 16 * MiB, 41);
  const target = await attachLoop(t, sourceFile);
  const seed = path.join(directory, 'seed.img');
  await writeLargeDistinctFile(seed, 4 * MiB, 2);
  const imaged = await b365(['image', seed, '--machine', 'host1', '--json'], { env: server.env });
  t.equal(imaged.exitCode, 0, imaged.stderr);

  t.test('capture with a token images a disk offline', async (t) => {
    const run = await rescueUnattended(
      server,
      `b365.action=capture b365.token=${server.adminToken} b365.machine=captured1 b365.source=${target.device}`,
    );
    t.equal(run.exitCode, 0, run.stderr + run.stdout);
    const fields = resultOf(run.stdout);
    t.equal(fields.status, 'ok', run.stdout);
    t.match(fields.image, /^captured1@\d{8}T\d{6}Z$/);
    const back = path.join(directory, 'captured.img');
    const restored = await b365(['restore', fields.image!, '--to', back], { env: server.env });
    t.equal(restored.exitCode, 0, restored.stderr);
    t.equal(await b3sum(back), await b3sum(target.device), 'the captured image restores to the same bytes');
  });

  t.test('capture with a restore code is refused: such a code cannot write images', async (t) => {
    const { code } = await createRestoreCode(server, 'host1');
    const run = await rescueUnattended(
      server,
      `b365.action=capture b365.code=${code} b365.machine=host1 b365.source=${target.device}`,
    );
    t.equal(resultOf(run.stdout).status, 'failed', run.stdout);
    t.equal(resultOf(run.stdout).code, 'forbidden');
    t.match(resultOf(run.stdout).message, /cannot write images/);
  });
});
