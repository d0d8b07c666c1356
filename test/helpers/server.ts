// A real repository server in its own process on 127.0.0.1, for tests that need one:
// plain HTTP on loopback (--insecure-http) unless the test asks for TLS.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { SERVER_NODE_OPTIONS } from '../../server/main.js';
import { CLI_MAIN } from './cli.js';
import { tempDir } from './tmp.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestServer {
  url: string;
  repo: string;
  adminToken: string;
  /** SHA-256 fingerprint of the server's certificate; null over plain HTTP. */
  fingerprint: string | null;
  /** Environment for `b365` client commands against this server as admin (B365_FINGERPRINT over TLS). */
  env: Record<string, string>;
  process: ResultPromise;
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Start again on the same port and repository. */
  restart(): Promise<void>;
}

/**
 * Wait for a starting server's "listening on URL" line; `output` returns all it printed
 * so far (tests read the rest of its stdout through it).
 */
export function serverListening(child: ResultPromise): Promise<{ url: string; output: () => string }> {
  let seen = '';
  child.stdout!.on('data', (data: Buffer) => {
    seen += data.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${seen}`)), 30_000);
    const check = () => {
      const match = /listening on (https?:\/\/\S+)/.exec(seen);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({ url: match[1]!, output: () => seen });
    };
    child.stdout!.on('data', check);
    child.then((result) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${result.exitCode}): ${seen}`));
    });
  });
}

export interface TestServerOptions {
  repo?: string;
  env?: Record<string, string>;
  /** Serve HTTPS: with the repository's self-signed certificate (true) or these files. */
  tls?: boolean | { cert: string; key: string };
  /** Where to listen, 127.0.0.1:0 by default. */
  listen?: string;
  /** More `b365 server` arguments. */
  args?: string[];
}

/** The fingerprint line `b365 server` prints before its "listening on" line. */
export function printedFingerprint(output: string): string | null {
  return /certificate SHA-256 fingerprint: ([0-9A-F:]{95})/.exec(output)?.[1] ?? null;
}

function transportArgs(tls: TestServerOptions['tls']): string[] {
  if (!tls) return ['--insecure-http'];
  return tls === true ? [] : ['--tls-cert', tls.cert, '--tls-key', tls.key];
}

/** Node's arguments for a test server: its options, then `b365 server` on `repo`, logging beside it. */
export function serverNodeArgs(repo: string, listen: string, extraArgs: string[] = []): string[] {
  return [
    ...SERVER_NODE_OPTIONS,
    CLI_MAIN,
    'server',
    '--repo',
    repo,
    '--listen',
    listen,
    '--log-file',
    path.join(repo, '..', 'server.log'),
    ...extraArgs,
  ];
}

async function spawn(
  repo: string,
  listen: string,
  env: Record<string, string>,
  extraArgs: string[],
): Promise<{ child: ResultPromise; url: string; fingerprint: string | null }> {
  const child = execa(process.execPath, serverNodeArgs(repo, listen, extraArgs), {
    env: { B365_LOG_LEVEL: 'info', ...env },
    reject: false,
    buffer: false,
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const { url, output } = await serverListening(child);
  return { child, url, fingerprint: printedFingerprint(output()) };
}

export async function startServer(t: Teardown, options: TestServerOptions = {}): Promise<TestServer> {
  const base = options.repo ? path.dirname(options.repo) : await tempDir(t, 'b365-server-');
  const repo = options.repo ?? path.join(base, 'repo');
  const extraEnv = options.env ?? {};
  const extraArgs = [...transportArgs(options.tls), ...(options.args ?? [])];
  const listen = options.listen ?? '127.0.0.1:0';
  let { child, url, fingerprint } = await spawn(repo, listen, extraEnv, extraArgs);
  const adminToken = (await fs.readFile(path.join(repo, 'admin.token'), 'utf8')).trim();
  const port = new URL(url).port;
  const server: TestServer = {
    url,
    repo,
    adminToken,
    fingerprint,
    env: {
      B365_SERVER: url,
      B365_TOKEN: adminToken,
      B365_STATE_DIR: path.join(base, 'client-state'),
      ...(fingerprint ? { B365_FINGERPRINT: fingerprint } : {}),
    },
    process: child,
    async stop() {
      if (child.exitCode === null && !child.killed) {
        child.kill('SIGTERM');
        await child;
      }
    },
    async kill() {
      child.kill('SIGKILL');
      await child;
    },
    async restart() {
      await server.stop();
      const host = listen.slice(0, listen.lastIndexOf(':'));
      ({ child, fingerprint } = await spawn(repo, `${host}:${port}`, extraEnv, extraArgs));
      server.fingerprint = fingerprint;
      server.process = child;
    },
  };
  t.teardown(() => server.stop());
  return server;
}
