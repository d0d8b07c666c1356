// `b365 rescue --unattended` on this host, with loop devices as disks and a real
// server: a restore that verifies, refusals (wrong, expired or revoked code, another
// machine's code, a mistyped parameter) that leave the target's bytes as they were, and
// over HTTPS a server whose certificate is not the pinned one never receiving the code.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { attachLoop, MiB } from '../helpers/disk.js';
import { createRestoreCode, rescueUnattended, resultOf } from '../helpers/rescue.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * A source disk of distinct bytes imaged as `machine`, and a larger target disk of other
 * bytes on a loop device, with the b3sum it must keep when a rescue is refused.
 */
async function imagedSourceAndTarget(
  t: Test,
  server: TestServer,
  machine: string,
  layout: { sourceSize: number; targetSize: number; seeds: [source: number, target: number] },
) {
  const directory = await tempDir(t);
  const source = path.join(directory, 'source.img');
  await writeLargeDistinctFile(source, layout.sourceSize, layout.seeds[0]);
  const imaged = await b365(['image', source, '--machine', machine, '--json'], { env: server.env });
  t.equal(imaged.exitCode, 0, imaged.stderr);
  const targetFile = path.join(directory, 'target.img');
  await writeLargeDistinctFile(targetFile, layout.targetSize, layout.seeds[1]);
  const target = await attachLoop(t, targetFile);
  return { image: imaged.json.image as string, source, targetFile, target, untouched: await b3sum(target.device) };
}

t.test('restore, capture and refusals', async (t) => {
  const server = await startServer(t);
  const { image, source, targetFile, target, untouched } = await imagedSourceAndTarget(t, server, 'host1', {
    sourceSize: 24 * MiB,
    targetSize: 32 * MiB,
    seeds: [5, 77],
  });

  t.test('a wrong code fails with invalid_code and writes nothing', async (t) => {
    const run = await rescueUnattended(
      server,
      `b365.action=restore b365.code=AAAA-BBBB-CCCC b365.target=${target.device}`,
    );
    t.equal(run.exitCode, 6, run.stderr);
    const fields = resultOf(run.stdout);
    t.equal(fields.status, 'failed', run.stdout);
    t.equal(fields.code, 'invalid_code');
    t.match(fields.message, /unknown restore code/);
    t.equal(await b3sum(target.device), untouched, 'target unchanged');
  });

  t.test("another machine's code is refused before the disk is touched", async (t) => {
    const { code } = await createRestoreCode(server, 'host1');
    const run = await rescueUnattended(
      server,
      `b365.action=restore b365.code=${code} b365.machine=other b365.target=${target.device}`,
    );
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

  t.test('an expired code fails with code_expired and writes nothing', async (t) => {
    const created = await b365(['restore-code', 'create', '--machine', 'host1', '--ttl', '1s', '--json'], {
      env: server.env,
    });
    t.equal(created.exitCode, 0, created.stderr);
    await sleep(1500);
    const run = await rescueUnattended(
      server,
      `b365.action=restore b365.code=${created.json.code} b365.target=${target.device}`,
    );
    t.equal(run.exitCode, 6, run.stderr);
    t.equal(resultOf(run.stdout).code, 'code_expired', run.stdout);
    t.match(resultOf(run.stdout).message, /expired at .*ask the admin for a new one/);
    t.equal(await b3sum(target.device), untouched, 'target unchanged');
  });

  t.test('a mistyped parameter still ends with a result line', async (t) => {
    const run = await rescueUnattended(server, `b365.action=restore b365.code=X b365.target=vda`);
    t.equal(run.exitCode, 2, run.stderr);
    t.same(resultOf(run.stdout), {
      status: 'failed',
      action: 'restore',
      code: 'usage',
      exit: '2',
      message: 'b365.target=vda: name a disk under /dev',
    });
  });

  t.test('a missing disk fails clearly', async (t) => {
    const { code } = await createRestoreCode(server, 'host1');
    const run = await rescueUnattended(
      server,
      `b365.action=restore b365.code=${code} b365.target=/dev/b365-no-such-disk b365.disk-wait=2`,
    );
    t.equal(run.exitCode, 4, run.stderr);
    t.equal(resultOf(run.stdout).status, 'failed');
    t.match(resultOf(run.stdout).message, /did not appear within/);
  });

  t.test('a good code restores the latest image and verifies it', async (t) => {
    const { code } = await createRestoreCode(server, 'host1');
    const run = await rescueUnattended(
      server,
      `b365.action=restore b365.code=${code} b365.image=latest b365.target=${target.device} b365.after=shell`,
    );
    t.equal(run.exitCode, 0, run.stderr + run.stdout);
    const fields = resultOf(run.stdout);
    t.equal(fields.status, 'ok', run.stdout);
    t.equal(fields.image, image);
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

t.test('over HTTPS: b365.fingerprint= pins the server before the code is sent', async (t) => {
  const server = await startServer(t, { tls: true, env: { B365_LOG_LEVEL: 'debug' } });
  const serverLog = () => fs.readFile(path.join(server.repo, '..', 'server.log'), 'utf8');
  const { target, untouched } = await imagedSourceAndTarget(t, server, 'host2', {
    sourceSize: 4 * MiB,
    targetSize: 8 * MiB,
    seeds: [6, 78],
  });
  const { code } = await createRestoreCode(server, 'host2');
  const fingerprint = server.fingerprint!;
  const wrong = fingerprint.replace(/^../, fingerprint.startsWith('00') ? '11' : '00');

  t.test('a server with another certificate is refused and never sees the code', async (t) => {
    const run = await rescueUnattended(
      server,
      `b365.action=restore b365.code=${code} b365.fingerprint=${wrong} b365.target=${target.device}`,
    );
    t.not(run.exitCode, 0, run.stderr);
    t.match(
      run.stdout,
      new RegExp(`B365: the server's certificate must have SHA-256 fingerprint ${wrong}`),
      'the expected pin is said before connecting',
    );
    const fields = resultOf(run.stdout);
    t.equal(fields.status, 'failed', run.stdout);
    t.match(fields.message, fingerprint, "the refusal shows the server's fingerprint");
    t.match(fields.message, wrong, 'and the expected one');
    t.match(
      run.stdout,
      new RegExp(
        `B365: REFUSED the server: its certificate's fingerprint ${fingerprint} is not b365.fingerprint=${wrong}; the restore code was not sent`,
      ),
      "the console says so in the kernel line's terms",
    );
    t.equal(fields.code, 'untrusted_server');
    t.notMatch(await serverLog(), /restore-codes\/exchange/, 'no request carrying the code reached the server');
    t.equal(await b3sum(target.device), untouched, 'target unchanged');
  });

  t.test('the right fingerprint, in any spelling, restores', async (t) => {
    const run = await rescueUnattended(
      server,
      `b365.action=restore b365.code=${code} b365.fingerprint=sha256:${fingerprint.replace(/:/g, '').toLowerCase()} b365.target=${target.device}`,
    );
    t.equal(run.exitCode, 0, run.stderr + run.stdout);
    t.equal(resultOf(run.stdout).status, 'ok', run.stdout);
    t.equal(resultOf(run.stdout).verified, 'yes');
    t.match(await serverLog(), /restore-codes\/exchange/, 'the code went to the pinned server');
  });
});
