// Starting and stopping the repository server (what `b365 server` runs).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clockFromEnvironment, type Clock } from '../src/clock.js';
import { UsageError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { createApp } from './app.js';
import { Repository } from './repository.js';
import { SigningKey } from './signing.js';
import type { Verifier } from './jobs/verify.js';

export interface ServerOptions {
  repo: string;
  listen: string;
  log: Logger;
  clock?: Clock;
  leaseMs?: number;
}

export interface RunningServer {
  url: string;
  repository: Repository;
  verifier: Verifier;
  newAdminToken: string | null;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!match) throw new UsageError(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  const port = Number(match[3]);
  if (port > 65535) throw new UsageError(`port ${port} is out of range`);
  return { host: match[1] ?? match[2]!, port };
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { host, port } = parseListen(options.listen);
  const clock = options.clock ?? clockFromEnvironment();
  const { repository, newAdminToken } = await Repository.open(options.repo, { clock, log: options.log, ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}) });
  const signingKey = await SigningKey.load(options.repo);
  const { app, verifier } = createApp(repository, options.log, { signingKey });
  const server: Server = await new Promise((resolve, reject) => {
    const listening = app.listen(port, host, () => resolve(listening));
    listening.once('error', reject);
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  options.log.info({ url, repo: options.repo }, 'server listening');
  return {
    url,
    repository,
    verifier,
    newAdminToken,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      repository.close();
    },
  };
}
