// A real repository server in its own process on 127.0.0.1, for tests that need one.
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
  /** Environment for `b365` client commands against this server as admin. */
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
      const match = /listening on (http:\/\/\S+)/.exec(seen);
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

async function spawn(repo: string, listen: string, env: Record<string, string>): Promise<{ child: ResultPromise; url: string }> {
  const child = execa(process.execPath, [...SERVER_NODE_OPTIONS, CLI_MAIN, 'server', '--repo', repo, '--listen', listen, '--log-file', path.join(repo, '..', 'server.log')], {
    env: { B365_LOG_LEVEL: 'info', ...env },
    reject: false,
    buffer: false,
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const { url } = await serverListening(child);
  return { child, url };
}

export async function startServer(t: Teardown, options: { repo?: string; env?: Record<string, string> } = {}): Promise<TestServer> {
  const base = options.repo ? path.dirname(options.repo) : await tempDir(t, 'b365-server-');
  const repo = options.repo ?? path.join(base, 'repo');
  const extraEnv = options.env ?? {};
  let { child, url } = await spawn(repo, '127.0.0.1:0', extraEnv);
  const adminToken = (await fs.readFile(path.join(repo, 'admin.token'), 'utf8')).trim();
  const port = new URL(url).port;
  const server: TestServer = {
    url,
    repo,
    adminToken,
    env: { B365_SERVER: url, B365_TOKEN: adminToken, B365_STATE_DIR: path.join(base, 'client-state') },
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
      ({ child } = await spawn(repo, `127.0.0.1:${port}`, extraEnv));
      server.process = child;
    },
  };
  t.teardown(() => server.stop());
  return server;
}
