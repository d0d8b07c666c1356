// Which TLS servers the HTTP client talks to, against real TLS servers on 127.0.0.1 that
// record every decrypted byte they receive: a refused server must have received none.
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { HttpClient } from '../../src/client/http.js';
import { normalizeFingerprint, probeServerCertificate } from '../../src/client/tls-pin.js';
import { ExitCode, UntrustedServerError, UsageError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/tmp.js';
import {
  certificateAuthority,
  type CertificateFiles,
  issuedCertificate,
  opensslFingerprint,
  selfSignedCertificate,
} from '../helpers/tls.js';

interface RecordingServer {
  url: string;
  /** Every application byte the server decrypted. */
  received(): Buffer;
}

/** A TLS server that answers any request with a small JSON body and keeps what it read. */
async function recordingServer(
  t: { teardown(fn: () => unknown): void },
  files: CertificateFiles,
): Promise<RecordingServer> {
  const [cert, key] = await Promise.all([fs.readFile(files.cert), fs.readFile(files.key)]);
  const parts: Buffer[] = [];
  const server = tls.createServer({ cert, key }, (socket) => {
    socket.on('data', (data: Buffer) => {
      parts.push(data);
      if (data.includes('\r\n\r\n'))
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}');
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, received: () => Buffer.concat(parts) };
}

function client(server: string, fingerprint?: string): HttpClient {
  return new HttpClient({ server, token: 'secret-token-value', fingerprint, retryForMs: 60_000 });
}

t.test('fingerprints are accepted in the forms people paste', async (t) => {
  const canonical = `AB:${'0F:'.repeat(30)}9C`;
  const hex = canonical.replace(/:/g, '');
  for (const form of [
    canonical,
    hex,
    hex.toLowerCase(),
    `sha256:${hex}`,
    `SHA256=${canonical}`,
    `sha256 Fingerprint=${canonical}`,
    ` ${canonical.toLowerCase()} `,
  ]) {
    t.equal(normalizeFingerprint(form), canonical, form);
  }
  for (const bad of ['', 'AB:CD', `${hex}00`, `ZZ${hex.slice(2)}`]) {
    t.throws(() => normalizeFingerprint(bad), UsageError, `refused: ${JSON.stringify(bad)}`);
  }
  t.match(t.throws(() => client('https://127.0.0.1:1', 'AB:CD')) as unknown as Error, {
    message: /"AB:CD" is not a SHA-256 certificate fingerprint/,
  });
});

t.test(
  'a self-signed server is trusted with its pin and refused without it or with another one, before any byte is sent',
  async (t) => {
    const directory = await tempDir(t);
    const files = await selfSignedCertificate(directory, 'server', ['backup.test']);
    const other = await selfSignedCertificate(directory, 'other', ['backup.test']);
    const presented = await opensslFingerprint(files.cert);
    const wrong = await opensslFingerprint(other.cert);

    const refusedWrong = await recordingServer(t, files);
    const error = await client(refusedWrong.url, wrong)
      .call('GET', '/images')
      .catch((caught: unknown) => caught);
    t.type(error, UntrustedServerError);
    t.equal((error as UntrustedServerError).exitCode, ExitCode.untrustedServer);
    t.match((error as Error).message, `expected ${wrong}, presented ${presented}`);
    t.match((error as UntrustedServerError).details, { expectedFingerprint: wrong, presentedFingerprint: presented });
    t.equal(refusedWrong.received().length, 0, 'the refused server received no byte');

    const refusedUnpinned = await recordingServer(t, files);
    const unpinned = await client(refusedUnpinned.url)
      .call('GET', '/images')
      .catch((caught: unknown) => caught);
    t.type(unpinned, UntrustedServerError);
    t.match((unpinned as Error).message, `pass --fingerprint ${presented}`);
    t.equal(refusedUnpinned.received().length, 0, 'the unpinned server received no byte');

    const trusted = await recordingServer(t, files);
    const pinned = client(trusted.url, presented.replace(/:/g, '').toLowerCase());
    t.same(await pinned.call('GET', '/images'), { ok: true }, 'the host name is not checked when the pin matches');
    t.match(
      trusted.received().toString(),
      /^GET \/api\/v1\/images HTTP\/1\.1\r\n[\s\S]*authorization: Bearer secret-token-value/i,
    );
    t.equal(pinned.serverCertificate?.fingerprint, presented, 'the client remembers the certificate it accepted');
    await pinned.close();
  },
);

t.test(
  'a certificate from a trusted CA is accepted for its name without a pin, and refused for another name',
  async (t) => {
    const directory = await tempDir(t);
    const ca = await certificateAuthority(directory);
    const files = await issuedCertificate(directory, 'server', ca, ['localhost', '127.0.0.1']);
    const wrongName = await issuedCertificate(directory, 'elsewhere', ca, ['elsewhere.test']);
    // Read by the client when it first builds its list of trusted CAs, as the process's own would be.
    process.env.NODE_EXTRA_CA_CERTS = ca.cert;

    const server = await recordingServer(t, files);
    const byCa = client(server.url);
    t.same(await byCa.call('GET', '/images'), { ok: true });
    t.equal(byCa.serverCertificate?.trustedByCa, true);
    await byCa.close();

    const misnamed = await recordingServer(t, wrongName);
    const error = await client(misnamed.url)
      .call('GET', '/images')
      .catch((caught: unknown) => caught);
    t.type(error, UntrustedServerError);
    t.match((error as Error).message, /ERR_TLS_CERT_ALTNAME_INVALID|does not match/);
    t.equal(misnamed.received().length, 0);

    const probe = await probeServerCertificate(server.url);
    t.equal(
      probe.fingerprint,
      await opensslFingerprint(files.cert),
      'the probe shows the fingerprint openssl computes',
    );
    t.equal(probe.trustedByCa, true);
    t.match(probe.subject, /CN=localhost/);
    t.ok(probe.validTo);
  },
);

t.test('a probe reads the certificate and sends nothing', async (t) => {
  const directory = await tempDir(t);
  const files = await selfSignedCertificate(directory, 'server', ['probe.test']);
  const server = await recordingServer(t, files);
  const probe = await probeServerCertificate(server.url);
  t.equal(probe.fingerprint, await opensslFingerprint(files.cert));
  t.equal(probe.trustedByCa, false);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(server.received().length, 0);
  await t.rejects(probeServerCertificate('http://127.0.0.1:1'), UsageError);
});

t.test('plain http:// is refused off the loopback interface unless B365_INSECURE_HTTP=1', async (t) => {
  t.doesNotThrow(() => client('http://127.0.0.1:8365'));
  t.doesNotThrow(() => client('http://[::1]:8365'));
  t.doesNotThrow(() => client('http://localhost:8365'));
  const error = t.throws(() => client('http://192.0.2.10:8365')) as unknown as Error;
  t.type(error, UsageError);
  t.match(error.message, /refusing plain http:\/\/192\.0\.2\.10:8365: .*in clear.*B365_INSECURE_HTTP=1/);
  process.env.B365_INSECURE_HTTP = '1';
  t.teardown(() => {
    delete process.env.B365_INSECURE_HTTP;
  });
  t.doesNotThrow(() => client('http://192.0.2.10:8365'));
});
