// `b365 server`: run the repository server; `b365 server reindex`: rebuild its catalog
// (offline from the directory, or `--online` through a running server's API).
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { clockFromEnvironment } from '../../core/clock.js';
import { UserError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { printJson } from '../output.js';
import { plural } from '../../core/plural.js';
import { clientFor, globals } from '../context.js';
import { registerServerInstall } from './server-install.js';
import {
  addTlsOptions,
  certificateNotice,
  registerFingerprint,
  reloadOnHangup,
  transportOf,
  type TlsFlags,
} from './server-tls.js';
import { helpShowsDefault } from '../help.js';

interface ReindexOutcome {
  images: number;
  objects: number;
  skipped: { key: string; reason: string }[];
  changes?: { imagesAdded: number; imagesDropped: number; objectsAdded: number; objectsDropped: number };
}

interface ReindexJob {
  id: string;
  state: 'running' | 'done' | 'error';
  report: ReindexOutcome | null;
  error: string | null;
}

export const DEFAULT_REPO = './var/repo';
export const DEFAULT_LISTEN = '127.0.0.1:8365';

/**
 * What the first start says about the new admin token. On a terminal it is shown, as
 * the person starting the server wants it; anywhere else (journald under systemd, a log
 * file) it would stay readable for as long as the logs, so only its file is named.
 */
export function adminTokenNotice(token: string, tokenFile: string, terminal: boolean): string {
  if (terminal) return `admin token (shown once, also saved in ${tokenFile}):\n${token}\n`;
  return `admin token written to ${tokenFile} (mode 0600)\n`;
}

export function registerServer(program: Command): void {
  const server = program.command('server').description('run the repository server, or maintain its repository');

  const start = server
    .command('start', { isDefault: true })
    .description('serve a repository over HTTPS (the default; see docs/tls.md)')
    .option('--config <file>', 'server configuration (JSON, see docs/server-config.md; B365_SERVER_CONFIG)')
    .option('--repo <dir>', `repository directory (B365_REPO, the config's repo, default ${DEFAULT_REPO})`)
    .option(
      '--listen <host:port>',
      `address to listen on (B365_LISTEN, the config's listen, default ${DEFAULT_LISTEN})`,
    )
    .option('--log-file <file>', 'write JSON log lines here instead of stderr');
  addTlsOptions(start).action(
    async (
      options: { config?: string; repo?: string; listen?: string; logFile?: string } & TlsFlags,
      command: Command,
    ) => {
      // Loaded only here: clients never pay for the server's modules.
      const { loadConfig } = await import('../../../server/config.js');
      const config = loadConfig(options.config ?? process.env.B365_SERVER_CONFIG ?? null);
      const repo = options.repo ?? process.env.B365_REPO ?? config.repo ?? DEFAULT_REPO;
      const listen = options.listen ?? process.env.B365_LISTEN ?? config.listen ?? DEFAULT_LISTEN;
      const log = createLogger({
        level: globals(command).logLevel,
        destination: options.logFile ?? config.logFile ?? undefined,
      });
      const transport = transportOf(options, config);
      const { startServer } = await import('../../../server/main.js');
      const running = await startServer({ repo, listen, log, config, transport });
      if (running.newAdminToken)
        process.stdout.write(
          adminTokenNotice(
            running.newAdminToken,
            path.join(path.resolve(repo), 'admin.token'),
            process.stdout.isTTY === true,
          ),
        );
      process.stdout.write(certificateNotice(running));
      process.stdout.write(`b365 server listening on ${running.url} (repository ${path.resolve(repo)})\n`);
      const stopReloading = reloadOnHangup(running, log);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      stopReloading();
      log.info('shutting down');
      await running.close();
    },
  );
  helpShowsDefault(server, start, '[--repo DIR] [--listen HOST:PORT] [--config FILE] [--log-file FILE]');

  registerFingerprint(server, { repo: () => DEFAULT_REPO });

  server
    .command('reindex')
    .description(
      'rebuild the catalog from the repository directory alone (stop the server first), or reconcile a running one with --online',
    )
    .option('--repo <dir>', 'repository directory', process.env.B365_REPO ?? DEFAULT_REPO)
    .option(
      '--online',
      'ask the running server (--server, admin token) to reconcile its catalog with its store; uploads go on meanwhile',
    )
    .action(async (options: { repo: string; online?: boolean }, command: Command) => {
      const report = options.online ? await reindexOnline(command) : await reindexOffline(options.repo, command);
      if (globals(command).json) printJson(report);
      else {
        const where = options.online ? 'the running server' : path.resolve(options.repo);
        process.stdout.write(
          `reindexed ${plural(report.images, 'image')} and ${plural(report.objects, 'object')} from ${where}\n`,
        );
        if (report.changes) {
          const { imagesAdded, imagesDropped, objectsAdded, objectsDropped } = report.changes;
          process.stdout.write(
            `  images: ${imagesAdded} added, ${imagesDropped} dropped (manifest gone); objects: ${objectsAdded} added, ${objectsDropped} dropped (file gone)\n`,
          );
        }
        for (const skipped of report.skipped) process.stdout.write(`skipped ${skipped.key}: ${skipped.reason}\n`);
      }
    });

  registerServerInstall(server);
}

async function reindexOffline(repo: string, command: Command): Promise<ReindexOutcome> {
  const log = createLogger({ level: globals(command).logLevel ?? 'warn' });
  const { Repository } = await import('../../../server/repository.js');
  const { reindex } = await import('../../../server/reindex.js');
  const { lockRepository } = await import('../../../server/repository-lock.js');
  // A server running on the directory holds its lock: the rebuild would race its catalog.
  const lock = lockRepository(repo, 'b365 server reindex', { create: true });
  try {
    const { repository } = await Repository.open(repo, { clock: clockFromEnvironment(), log });
    try {
      return await reindex(repository);
    } finally {
      repository.close();
    }
  } finally {
    lock.release();
  }
}

async function reindexOnline(command: Command): Promise<ReindexOutcome> {
  const client = await clientFor(command, 'transfer');
  try {
    let job = await client.http.call<ReindexJob>('POST', '/reindex', { idempotent: false });
    while (job.state === 'running') {
      await sleep(500);
      job = await client.http.call<ReindexJob>('GET', `/reindex/${encodeURIComponent(job.id)}`);
    }
    if (job.state === 'error' || !job.report) throw new UserError(`reindex failed: ${job.error ?? 'no report'}`);
    return job.report;
  } finally {
    await client.close();
  }
}
