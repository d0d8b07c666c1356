// Starting and stopping the repository server (what `b365 server` runs).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clockFromEnvironment, type Clock } from '../src/clock.js';
import { type ServerConfig, defaultConfig } from './config.js';
import type { Nightly } from './nightly.js';
import type { Logger } from '../src/log.js';
import { createApp } from './app.js';
import { parseListen } from '../src/listen.js';
import { Repository } from './repository.js';
import { SigningKey } from './signing.js';
import type { Verifier } from './jobs/verify.js';

export interface ServerOptions {
  repo: string;
  listen: string;
  log: Logger;
  clock?: Clock;
  leaseMs?: number;
  config?: ServerConfig;
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
  close(): Promise<void>;
}


export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { host, port } = parseListen(options.listen);
  const clock = options.clock ?? clockFromEnvironment();
  const { repository, newAdminToken } = await Repository.open(options.repo, { clock, log: options.log, ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}) });
  const signingKey = await SigningKey.load(options.repo);
  const config = options.config ?? defaultConfig();
  const { app, verifier, nightly, reindexer } = createApp(repository, options.log, { signingKey, config });
  const server: Server = await new Promise((resolve, reject) => {
    const listening = app.listen(port, host, () => resolve(listening));
    listening.once('error', reject);
  });
  // Headers and idle keep-alive connections are bounded in time; a whole request is
  // not, since a large upload over a slow link may take long (its body's idleness is
  // bounded instead, see body-timeout.ts).
  server.keepAliveTimeout = config.http.keepAliveTimeoutSeconds * 1000;
  server.headersTimeout = config.http.headersTimeoutSeconds * 1000;
  server.requestTimeout = 0;
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  options.log.info({ url, repo: options.repo }, 'server listening');
  nightly.start();
  return {
    url,
    repository,
    verifier,
    nightly,
    newAdminToken,
    async close() {
      await nightly.stop();
      await reindexer.idle();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      repository.close();
    },
  };
}
