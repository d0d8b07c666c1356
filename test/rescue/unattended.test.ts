// `b365 rescue --unattended` on this host, with loop devices as disks and a real
// server: a restore that verifies, and refusals (wrong code, revoked code, another
// machine's code, a mistyped parameter) that leave the target's bytes as they were.
import path from 'node:path';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { attachLoop, MiB } from '../helpers/disk.js';
import { createRestoreCode, rescueUnattended, resultOf } from '../helpers/rescue.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('restore, capture and refusals', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'source.img');
  await writeLargeDistinctFile(source, 24 * MiB, 5);
  const imaged = await b365(['image', source, '--machine', 'host1', '--json'], { env: server.env });
  t.equal(imaged.exitCode, 0, imaged.stderr);

  const targetFile = path.join(directory, 'target.img');
  await writeLargeDistinctFile(targetFile, 32 * MiB, 77);
  const target = await attachLoop(t, targetFile);
  const untouched = await b3sum(target.device);

  t.test('a wrong code fails with invalid_code and writes nothing', async (t) => {
    const run = await rescueUnattended(server, `b365.action=restore b365.code=AAAA-BBBB-CCCC b365.target=${target.device}`);
    t.equal(run.exitCode, 6, run.stderr);
    const fields = resultOf(run.stdout);
    t.equal(fields.status, 'failed', run.stdout);
    t.equal(fields.code, 'invalid_code');
    t.match(fields.message, /unknown restore code/);
    t.equal(await b3sum(target.device), untouched, 'target unchanged');
  });

  t.test("another machine's code is refused before the disk is touched", async (t) => {
    const { code } = await createRestoreCode(server, 'host1');
    const run = await rescueUnattended(server, `b365.action=restore b365.code=${code} b365.machine=other b365.target=${target.device}`);
    t.equal(resultOf(run.stdout).status, 'failed', run.stdout);
    t.match(resultOf(run.stdout).message, /opens machine host1, not other/);
    t.equal(await b3sum(target.device), untouched, 'target unchanged');
  });

  t.test('a revoked code fails with code_revoked', async (t) => {
    const { code, id } = await createRestoreCode(server, 'host1');
    const revoked = await b365(['restore-code', 'revoke', String(id)], { env: server.env });
    t.equal(revoked.exitCode, 0, revoked.stderr);
    const run = await rescueUnattended(server, `b365.action=restore b365.code=${code} b365.target=${target.device}`);
    t.equal(resultOf(run.stdout).code, 'code_revoked', run.stdout);
    t.equal(await b3sum(target.device), untouched, 'target unchanged');
  });

  t.test('a mistyped parameter still ends with a result line', async (t) => {
    const run = await rescueUnattended(server, `b365.action=restore b365.code=X b365.target=vda`);
    t.equal(run.exitCode, 2, run.stderr);
    t.same(resultOf(run.stdout), { status: 'failed', action: 'restore', code: 'usage', exit: '2', message: 'b365.target=vda: name a disk under /dev' });
  });

  t.test('a missing disk fails clearly', async (t) => {
    const { code } = await createRestoreCode(server, 'host1');
    const run = await rescueUnattended(server, `b365.action=restore b365.code=${code} b365.target=/dev/b365-no-such-disk b365.disk-wait=2`);
    t.equal(run.exitCode, 4, run.stderr);
    t.equal(resultOf(run.stdout).status, 'failed');
    t.match(resultOf(run.stdout).message, /did not appear within/);
  });

  t.test('a good code restores the latest image and verifies it', async (t) => {
    const { code } = await createRestoreCode(server, 'host1');
    const run = await rescueUnattended(server, `b365.action=restore b365.code=${code} b365.image=latest b365.target=${target.device} b365.after=shell`);
    t.equal(run.exitCode, 0, run.stderr + run.stdout);
    const fields = resultOf(run.stdout);
    t.equal(fields.status, 'ok', run.stdout);
    t.equal(fields.image, imaged.json.image);
    t.equal(fields.target, target.device);
    t.equal(fields.verified, 'yes');
    t.match(run.stdout, /B365: restore code accepted for machine host1/);
    t.match(run.stdout, /B365: writing 100%/);
    t.match(run.stdout, /B365: check ok: content digest of disk/);
    // The first 24 MiB of the target now hold the source; b3sum of the source is the oracle.
    const prefix = await attachLoop(t, targetFile, { size: 24 * MiB });
    t.equal(await b3sum(prefix.device), await b3sum(source), 'target holds the source bytes (b3sum)');
  });
});
