// `b365 server` over TLS, against real server processes and the real CLI, with openssl as
// the oracle: HTTPS by default with a self-signed certificate, pinning, a CA's certificate,
// reloading on SIGHUP during an upload, and the rules for plain HTTP.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t from 'tap';
import { probeServerCertificate } from '../../src/client/tls-pin.js';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { certificateAuthority, issuedCertificate, opensslFingerprint, opensslText } from '../helpers/tls.js';

const MiB = 1 << 20;
const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

/** Through process.kill: the child's own kill() would mark it killed and the helper's stop() would then leave it running. */
function sendHangup(pid: number): void {
  process.kill(pid, 'SIGHUP');
}

t.test('the server serves HTTPS by default with a self-signed certificate that clients pin', async (t) => {
  const server = await startServer(t, { tls: true, args: ['--tls-name', 'backup.example', '--tls-name', '10.1.2.3'] });
  const certFile = path.join(server.repo, 'keys', 'tls.crt');
  const keyFile = path.join(server.repo, 'keys', 'tls.key');
  t.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.match(server.fingerprint, FINGERPRINT, 'the fingerprint is printed at start');
  t.equal(
    server.fingerprint,
    await opensslFingerprint(certFile),
    "the printed fingerprint is the stored certificate's",
  );
  t.equal((await fs.stat(keyFile)).mode & 0o777, 0o600, 'the private key is readable by the server only');

  const text = await opensslText(certFile);
  for (const name of ['DNS:backup.example', 'IP Address:10.1.2.3', 'DNS:localhost', 'IP Address:127.0.0.1'])
    t.match(text, name, `SAN ${name}`);
  t.match(text, /Key Usage: critical\s+Digital Signature/);
  t.match(text, /Extended Key Usage:\s+TLS Web Server Authentication/);
  t.match(text, /CA:FALSE/);
  t.match(text, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);

  const printed = await b365(['server', 'fingerprint', '--repo', server.repo]);
  t.equal(printed.exitCode, 0, printed.stderr);
  t.equal(printed.stdout, `${server.fingerprint}\n`, '`b365 server fingerprint` prints just the fingerprint');

  const plain = await fetch(`${server.url.replace('https:', 'http:')}/api/v1/keys`).then(
    (response) => `HTTP ${response.status}`,
    (error: Error) => `refused: ${error.message}`,
  );
  t.match(plain, /^refused/, 'plain HTTP gets no answer');

  const pinned = await b365(['images'], { env: server.env });
  t.equal(pinned.exitCode, 0, pinned.stderr);

  const unpinned = await b365(['images'], { env: { ...server.env, B365_FINGERPRINT: undefined } });
  t.equal(unpinned.exitCode, 11, 'exit code 11: untrusted server');
  t.match(unpinned.stderr, `pass --fingerprint ${server.fingerprint}`);
  t.notMatch(unpinned.stderr, / {4}at /, 'no stack trace');

  const wrong = `${server.fingerprint!.slice(0, -2)}${server.fingerprint!.endsWith('00') ? '01' : '00'}`;
  const refused = await b365(['--fingerprint', wrong, 'images', '--json'], {
    env: { ...server.env, B365_FINGERPRINT: undefined },
  });
  t.equal(refused.exitCode, 11);
  t.match(refused.stderr, `expected ${wrong}, presented ${server.fingerprint}`);
  t.match(refused.json, {
    error: { code: 'untrusted_server', expectedFingerprint: wrong, presentedFingerprint: server.fingerprint },
  });

  const token = await b365(['token', 'create', '--role', 'machine', '--machine', 'web1'], { env: server.env });
  t.equal(token.exitCode, 0, token.stderr);
  t.match(token.stdout, /^\S+\n$/, 'stdout holds the token alone');
  t.match(
    token.stderr,
    new RegExp(`b365 agent install --server https://\\S+:\\d+ --fingerprint ${server.fingerprint} --token-file -`),
    "the agent's command line is on stderr",
  );

  await server.restart();
  t.equal(server.fingerprint, await opensslFingerprint(certFile), 'a restart keeps the certificate');
  t.equal((await b365(['images'], { env: server.env })).exitCode, 0, 'the old pin still works after a restart');
});

t.test(
  'a certificate from a CA the client trusts needs no pin, and SIGHUP swaps it while an upload goes on',
  async (t) => {
    const directory = await tempDir(t);
    const ca = await certificateAuthority(directory);
    const first = await issuedCertificate(directory, 'first', ca, ['localhost', '127.0.0.1']);
    const second = await issuedCertificate(directory, 'second', ca, ['localhost', '127.0.0.1']);
    const live = { cert: path.join(directory, 'live.crt'), key: path.join(directory, 'live.key') };
    await fs.copyFile(first.cert, live.cert);
    await fs.copyFile(first.key, live.key);
    const server = await startServer(t, { tls: live });
    const env = { ...server.env, NODE_EXTRA_CA_CERTS: ca.cert };
    t.equal(server.fingerprint, await opensslFingerprint(first.cert));

    const printed = await b365(['server', 'fingerprint', '--repo', server.repo, '--tls-cert', live.cert]);
    t.equal(printed.stdout, `${server.fingerprint}\n`);
    t.equal(
      (await b365(['images'], { env: { ...env, B365_FINGERPRINT: undefined } })).exitCode,
      0,
      'trusted by the CA without a pin',
    );
    t.equal(
      (await b365(['images'], { env: { ...server.env, B365_FINGERPRINT: undefined } })).exitCode,
      11,
      'refused when the CA is not trusted',
    );

    const source = path.join(directory, 'disk.img');
    await writeLargeDistinctFile(source, 64 * MiB, 7);
    const image = execa(process.execPath, [CLI_MAIN, 'image', source, '--machine', 'reload', '--json'], {
      env: { ...env, B365_FINGERPRINT: undefined, B365_LOG_LEVEL: 'warn' },
      reject: false,
    });
    const chunks = path.join(server.repo, 'chunks');
    while ((await fs.readdir(chunks).catch(() => [])).length === 0 && image.exitCode === null) await sleep(20);
    await fs.copyFile(second.key, `${live.key}.new`);
    await fs.copyFile(second.cert, `${live.cert}.new`);
    await fs.rename(`${live.key}.new`, live.key);
    await fs.rename(`${live.cert}.new`, live.cert);
    sendHangup(server.process.pid!);
    const expected = await opensslFingerprint(second.cert);
    let presented = '';
    for (let attempt = 0; attempt < 100 && presented !== expected; attempt++) {
      presented = (await probeServerCertificate(server.url)).fingerprint;
      if (presented !== expected) await sleep(20);
    }
    t.equal(presented, expected, 'new connections get the new certificate');
    t.equal(image.exitCode, null, 'the upload was still going when the certificate changed');
    const result = await image;
    t.equal(result.exitCode, 0, String(result.stderr));
    t.notMatch(String(result.stderr), /retrying/, 'no connection of the upload was dropped');
    t.ok(JSON.parse(String(result.stdout)).image, 'the image was committed');

    // A key that does not belong to the certificate: the server keeps the one it has.
    await fs.copyFile(first.key, live.key);
    sendHangup(server.process.pid!);
    const log = path.join(server.repo, '..', 'server.log');
    for (let attempt = 0; attempt < 100 && !(await fs.readFile(log, 'utf8')).includes('not reloaded'); attempt++)
      await sleep(50);
    t.match(
      await fs.readFile(log, 'utf8'),
      /key does not belong to the certificate.*TLS certificate not reloaded, the current one stays/,
    );
    t.equal(
      (await probeServerCertificate(server.url)).fingerprint,
      expected,
      'bad files leave the current certificate in place',
    );
  },
);

t.test('plain HTTP only when asked, and on loopback unless asked for anywhere', async (t) => {
  const directory = await tempDir(t);
  const anywhere = await b365(
    ['server', '--repo', path.join(directory, 'repo'), '--listen', '0.0.0.0:0', '--insecure-http'],
    { timeout: 30_000 },
  );
  t.equal(anywhere.exitCode, 2, 'refused with a usage error');
  t.match(anywhere.stderr, /refusing plain HTTP on 0\.0\.0\.0: .*--insecure-http-anywhere/);
  t.notMatch(anywhere.stderr, / {4}at /);

  const halfPair = await b365(['server', '--repo', path.join(directory, 'repo'), '--tls-cert', '/nonexistent.crt'], {
    timeout: 30_000,
  });
  t.equal(halfPair.exitCode, 2);
  t.match(halfPair.stderr, /--tls-cert and --tls-key go together/);

  const allowed = await startServer(t, { listen: '0.0.0.0:0', args: ['--insecure-http-anywhere'] });
  t.match(allowed.url, /^http:\/\/0\.0\.0\.0:\d+$/, 'plain HTTP on every address when asked for anywhere');
  t.equal(allowed.fingerprint, null);
  const port = new URL(allowed.url).port;
  const listed = await b365(['images'], { env: { ...allowed.env, B365_SERVER: `http://127.0.0.1:${port}` } });
  t.equal(listed.exitCode, 0, listed.stderr);
});
