// Starting and stopping the repository server (what `b365 server` runs): HTTPS unless
// plain HTTP is asked for, and then only on a loopback address unless asked for anywhere.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { UsageError } from '../src/core/errors.js';
import { isLoopbackHost } from '../src/core/listen.js';
import { clockFromEnvironment, type Clock } from '../src/core/clock.js';
import { type ServerConfig, defaultConfig } from './config.js';
import type { Nightly } from './nightly.js';
import type { Logger } from '../src/core/log.js';
import { createApp } from './app.js';
import { parseListen } from '../src/core/listen.js';
import { Repository } from './repository.js';
import { lockRepository } from './repository-lock.js';
import { SigningKey } from './signing.js';
import type { Verifier } from './jobs/verify.js';
import { type CertificateFiles, type LoadedCertificate, ensureSelfSigned, loadCertificate } from './tls.js';

/**
 * How the server speaks: HTTPS with the operator's certificate files or the repository's
 * self-signed one (made on first start for the host's names and `names`), or plain HTTP.
 */
export type ServerTransport =
  | { kind: 'https'; files?: CertificateFiles; names?: string[] }
  | { kind: 'http'; anywhere?: boolean };

export interface ServerOptions {
  repo: string;
  listen: string;
  log: Logger;
  clock?: Clock;
  leaseMs?: number;
  config?: ServerConfig;
  /** HTTPS with the self-signed certificate when not given. */
  transport?: ServerTransport;
}

export { parseListen };

/**
 * Node options the server runs with (bin/b365 passes the same). Every upload leaves a
 * frame and its decoded copy behind; with V8's small default heap that garbage forces a
 * full collection every few dozen chunks. A 64 MiB initial heap cuts the server's CPU
 * per image by about a third at the same peak memory (docs/benchmarks.md).
 */
export const SERVER_NODE_OPTIONS = ['--initial-heap-size=64'];

export interface RunningServer {
  url: string;
  repository: Repository;
  verifier: Verifier;
  nightly: Nightly;
  newAdminToken: string | null;
  /** The certificate served now; null over plain HTTP. */
  certificate: LoadedCertificate | null;
  /** True when this start made the self-signed certificate. */
  certificateCreated: boolean;
  /**
   * Read the certificate files again and serve them to new connections; open ones (an
   * upload) go on. Bad files throw and the current certificate stays.
   */
  reloadCertificate(): Promise<LoadedCertificate>;
  close(): Promise<void>;
}

const TLS_OPTIONS = { minVersion: 'TLSv1.2' } as const;

/** Plain HTTP listens on loopback only, unless the operator says anywhere. */
function checkPlainHttp(transport: ServerTransport, host: string): void {
  if (transport.kind !== 'http' || transport.anywhere || isLoopbackHost(host)) return;
  throw new UsageError(
    `refusing plain HTTP on ${host}: tokens, restore codes and disks would cross the network in clear. Serve HTTPS (the default), listen on 127.0.0.1, or pass --insecure-http-anywhere on a network you trust`,
  );
}

async function certificateFor(
  transport: ServerTransport,
  repo: string,
): Promise<{ certificate: LoadedCertificate | null; created: boolean }> {
  if (transport.kind === 'http') return { certificate: null, created: false };
  if (transport.files) return { certificate: await loadCertificate(transport.files), created: false };
  return ensureSelfSigned(repo, transport.names ?? []);
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { host, port } = parseListen(options.listen);
  const transport = options.transport ?? { kind: 'https' };
  checkPlainHttp(transport, host);
  const clock = options.clock ?? clockFromEnvironment();
  // Held until close: no capture or restore with --repo opens the directory meanwhile.
  const lock = lockRepository(options.repo, 'b365 server', { create: true });
  const { repository, newAdminToken } = await Repository.open(options.repo, {
    clock,
    log: options.log,
    ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
  }).catch((error: unknown) => {
    lock.release();
    throw error;
  });
  const signingKey = await SigningKey.load(options.repo);
  const config = options.config ?? defaultConfig();
  let { certificate, created: certificateCreated } = await certificateFor(transport, options.repo).catch(
    (error: unknown) => {
      repository.close();
      lock.release();
      throw error;
    },
  );
  const { app, verifier, nightly, reindexer } = createApp(repository, options.log, { signingKey, config });
  const server: http.Server = certificate
    ? https.createServer({ ...TLS_OPTIONS, cert: certificate.cert, key: certificate.key }, app)
    : http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Headers and idle keep-alive connections are bounded in time; a whole request is
  // not, since a large upload over a slow link may take long (its body's idleness is
  // bounded instead, see body-timeout.ts).
  server.keepAliveTimeout = config.http.keepAliveTimeoutSeconds * 1000;
  server.headersTimeout = config.http.headersTimeoutSeconds * 1000;
  server.requestTimeout = 0;
  const address = server.address() as AddressInfo;
  const url = `${certificate ? 'https' : 'http'}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  options.log.info({ url, repo: options.repo, fingerprint: certificate?.fingerprint ?? null }, 'server listening');
  nightly.start();
  return {
    url,
    repository,
    verifier,
    nightly,
    newAdminToken,
    get certificate() {
      return certificate;
    },
    certificateCreated,
    async reloadCertificate() {
      if (!certificate) throw new UsageError('the server speaks plain HTTP: there is no certificate to reload');
      const fresh = await loadCertificate(certificate.files);
      (server as https.Server).setSecureContext({ ...TLS_OPTIONS, cert: fresh.cert, key: fresh.key });
      certificate = fresh;
      options.log.info({ fingerprint: fresh.fingerprint, cert: fresh.files.cert }, 'TLS certificate reloaded');
      return fresh;
    },
    async close() {
      await nightly.stop();
      await reindexer.idle();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      repository.close();
      lock.release();
    },
  };
}
