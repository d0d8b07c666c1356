// The rescue session trusts a server before its restore code leaves the machine: the
// technician confirms the certificate's fingerprint shown on the console, or the kernel
// line pins it. A refused server never receives the code: the real HTTPS server here logs
// every request it gets, and openssl tells which fingerprint its certificate has.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b365, type CliResult } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { MiB } from '../helpers/disk.js';
import { createRestoreCode } from '../helpers/rescue.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const EXCHANGE = 'restore-codes/exchange';

/** The certificate's SHA-256 fingerprint as the field's tool prints it (`sha256 Fingerprint=AB:CD:...`). */
async function opensslFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const handshake = await execa('openssl', ['s_client', '-connect', `${hostname}:${port}`], {
    input: '',
    reject: false,
  });
  const printed = await execa('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], {
    input: String(handshake.stdout),
  });
  return String(printed.stdout)
    .trim()
    .replace(/^.*Fingerprint=/i, '');
}

/** How many restore-code exchanges the server has logged so far. */
async function exchangesLogged(server: TestServer): Promise<number> {
  const log = await fs.readFile(path.join(server.repo, '..', 'server.log'), 'utf8');
  return log.split('\n').filter((line) => line.includes(EXCHANGE)).length;
}

/** The interactive rescue answering `answers` in order; it ends when they run out (exit 130). */
function rescueSession(
  stateDirectory: string,
  answers: string[],
  cmdline = 'boot=live',
  env: Record<string, string> = {},
): Promise<CliResult> {
  return b365(['rescue', '--no-network', '--cmdline', cmdline], {
    input: `${answers.join('\n')}\n`,
    env: { B365_STATE_DIR: stateDirectory, ...env },
  });
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

t.test('the server is trusted before the restore code is sent', async (t) => {
  const server = await startServer(t, { tls: true, env: { B365_LOG_LEVEL: 'debug' } });
  t.match(server.url, /^https:\/\//, 'the server speaks HTTPS');
  const fingerprint = await opensslFingerprint(server.url);
  t.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, 'openssl reads the certificate');
  t.equal(server.fingerprint, fingerprint, 'the server announced the fingerprint openssl computes');
  const wrong = fingerprint.replace(/^../, fingerprint.startsWith('00') ? '11' : '00');

  const directory = await tempDir(t);
  const source = path.join(directory, 'source.img');
  await writeLargeDistinctFile(source, 2 * MiB, 8);
  const imaged = await b365(['image', source, '--machine', 'desk9', '--json'], { env: server.env });
  t.equal(imaged.exitCode, 0, imaged.stderr);
  const { code } = await createRestoreCode(server, 'desk9');
  const state = server.env.B365_STATE_DIR!;

  t.test('the technician says no: back to the server question, the code is never sent', async (t) => {
    const before = await exchangesLogged(server);
    const run = await rescueSession(state, ['restore', server.url, 'no', '', 'no']);
    t.equal(run.exitCode, 130, 'the session waits at the server question when the answers run out');
    t.equal(count(run.stdout, new RegExp(fingerprint)), 2, 'the fingerprint is shown each time');
    t.match(run.stdout, /no certificate authority this system trusts vouches for it/);
    t.match(run.stdout, /subject: .*valid until /);
    t.equal(count(run.stdout, /Backup server URL/), 3, 'each "no" goes back to the server question');
    t.notMatch(run.stdout, /Restore code/, 'the restore code was never asked for');
    t.equal(await exchangesLogged(server), before, 'the server received no restore code');
  });

  t.test('the technician says yes: the code is sent and the pin holds for the session', async (t) => {
    const before = await exchangesLogged(server);
    // Restore: confirm, code, first image, then back from the disk question; restore again:
    // the same server is checked against the confirmed pin without asking.
    const run = await rescueSession(state, [
      'restore',
      server.url,
      'yes',
      code,
      '1',
      'back',
      'restore',
      server.url,
      code,
    ]);
    t.equal(run.exitCode, 130, run.stderr);
    t.match(run.stdout, new RegExp(`server certificate SHA-256 fingerprint:\\s+${fingerprint}`));
    t.equal(count(run.stdout, /Does the fingerprint match/), 1, 'asked once in the session');
    t.match(run.stdout, /it matches the fingerprint confirmed earlier in this session/);
    t.equal(
      count(run.stdout, /restore code accepted: machine desk9/),
      2,
      'the code was accepted over the pinned connection, twice',
    );
    t.match(
      run.stdout,
      new RegExp(`Images of desk9[\\s\\S]*${imaged.json.image}`),
      'later calls go through the pinned client',
    );
    t.equal(await exchangesLogged(server), before + 2, 'the server received the code twice');
  });

  t.test('b365.fingerprint= on the kernel line: a match needs no question', async (t) => {
    const before = await exchangesLogged(server);
    const spelled = fingerprint.replace(/:/g, '').toLowerCase();
    const run = await rescueSession(state, ['restore', server.url, code], `boot=live b365.fingerprint=${spelled}`);
    t.match(run.stdout, /it matches b365.fingerprint= from the kernel command line/);
    t.notMatch(run.stdout, /Does the fingerprint match/);
    t.match(run.stdout, /restore code accepted: machine desk9/);
    t.equal(await exchangesLogged(server), before + 1);
  });

  t.test('b365.fingerprint= on the kernel line: a mismatch is refused, the code never sent', async (t) => {
    const before = await exchangesLogged(server);
    const run = await rescueSession(state, ['restore', server.url, server.url], `boot=live b365.fingerprint=${wrong}`);
    t.equal(run.exitCode, 130, run.stderr);
    t.match(
      run.stdout,
      /REFUSED: this is not the expected server; its certificate does not match b365.fingerprint= from the kernel command line/,
    );
    t.match(run.stdout, new RegExp(`server: +${fingerprint}`), "the server's fingerprint is shown");
    t.match(run.stdout, new RegExp(`expected: +${wrong}`), 'and the expected one');
    t.equal(count(run.stdout, /Backup server URL/), 3, 'each refusal goes back to the server question');
    t.notMatch(run.stdout, /Restore code/);
    t.equal(await exchangesLogged(server), before, 'the server received no restore code');
  });

  t.test('a malformed b365.fingerprint= is named, and the technician confirms by hand', async (t) => {
    const run = await rescueSession(state, ['restore', server.url, 'no'], 'boot=live b365.fingerprint=12:34');
    t.match(run.stdout, /b365.fingerprint=12:34: /);
    t.match(run.stdout, /Does the fingerprint match/);
  });
});

t.test('plain HTTP to another machine: refused, or with B365_INSECURE_HTTP=1 only on an explicit yes', async (t) => {
  const state = path.join(await tempDir(t), 'state');
  const refused = await rescueSession(state, ['restore', 'http://192.0.2.10:8365']);
  t.equal(refused.exitCode, 130, refused.stderr);
  t.match(refused.stdout, /refusing plain http:\/\/192.0.2.10:8365: .*use https:\/\//);
  t.equal(count(refused.stdout, /Backup server URL/), 2, 'back to the server question');
  t.notMatch(refused.stdout, /Restore code/, 'the code was never asked for');

  const warned = await rescueSession(state, ['restore', 'http://192.0.2.10:8365', '', '', ''], 'boot=live', {
    B365_INSECURE_HTTP: '1',
  });
  t.equal(warned.exitCode, 130, warned.stderr);
  t.match(warned.stdout, /WARNING: http:\/\/192.0.2.10:8365 is plain HTTP/);
  t.equal(count(warned.stdout, /Send the restore code in clear anyway/), 2, 'the default answer is no');
  t.notMatch(warned.stdout, /Restore code/, 'the code was never asked for');
});
