// `b365 gc [--dry-run]`: garbage collection of chunks no image references. Admin only;
// it runs on the server, the command waits for it and reports the bytes reclaimed.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { UserError } from '../../core/errors.js';
import { clientFor, globals } from '../context.js';
import { parseDurationSeconds } from '../../core/duration.js';
import { printJson } from '../output.js';
import { formatBytes } from '../../core/units.js';
import { plural } from '../../core/plural.js';
import type { GcJob } from '../../format/gc-job.js';

export function registerGc(program: Command): void {
  program
    .command('gc')
    .description('remove stored chunks that no image or open upload references')
    .option('--dry-run', 'count what would be removed, remove nothing')
    .option('--grace <duration>', "spare objects touched this recently (default: the server's configuration, 24h)")
    .option('--no-wait', 'start it and return')
    .action(async (flags: { dryRun?: boolean; grace?: string; wait: boolean }, command: Command) => {
      const client = await clientFor(command);
      try {
        const body: Record<string, unknown> = { dryRun: flags.dryRun === true };
        if (flags.grace !== undefined) body.graceSeconds = parseDurationSeconds(flags.grace, '--grace');
        let job = await client.http.call<GcJob>('POST', '/gc', { json: body, idempotent: false });
        while (flags.wait && job.state === 'running') {
          await sleep(500);
          job = await client.http.call<GcJob>('GET', `/gc/${encodeURIComponent(job.id)}`);
        }
        if (globals(command).json) printJson(job);
        else if (job.state === 'running') process.stdout.write(`garbage collection ${job.id} started\n`);
        else {
          const { report } = job;
          process.stdout.write(
            `${[
              `garbage collection ${job.id}: ${job.state}${job.dryRun ? ' (dry run)' : ''}`,
              `  ${plural(report.manifests, 'manifest')} ${report.manifests === 1 ? 'references' : 'reference'} ${plural(report.referenced, 'object')}; ${plural(report.scanned, 'object')} in the store`,
              `  spared ${report.keptPinned} pinned by open uploads, ${report.keptRecent} touched within the grace period`,
              `  ${job.dryRun ? 'would remove' : 'removed'} ${plural(report.removed, 'object')}, ${formatBytes(report.bytesReclaimed)} ${job.dryRun ? 'reclaimable' : 'reclaimed'}`,
            ].join('\n')}\n`,
          );
        }
        if (job.state === 'error') throw new UserError(`garbage collection failed: ${job.error}`);
      } finally {
        await client.close();
      }
    });
}
