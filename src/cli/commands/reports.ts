// `b365 reports`: one line per agent run (successful or not), newest first; and
// `b365 incidents`: what the server has raised about runs, agents and space.
import type { Command } from 'commander';
import { clockFromEnvironment } from '../../core/clock.js';
import { UsageError } from '../../core/errors.js';
import type { RunOutcome } from '../../format/run-report.js';
import { clientFor, globals } from '../context.js';
import { printJson, printTable } from '../output.js';
import { formatBytes, formatDuration } from '../../core/units.js';
import { isDuration, parseDurationMs } from '../../core/duration.js';
import { plural } from '../../core/plural.js';
import { formatWhen, serverTimeFormat } from '../time-format.js';

interface RunView extends RunOutcome {
  id: string;
  machine: string;
  trigger: string;
  scheduledFor: string | null;
  state: string;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  attempts: number;
}

interface IncidentView {
  id: number;
  kind: string;
  subject: string;
  state: string;
  openedAt: string;
  resolvedAt: string | null;
  summary: string;
  notifications: number;
}

/** "7d", "12h" (back from now) or an ISO time. */
export function sinceOf(text: string): string {
  if (isDuration(text)) return new Date(clockFromEnvironment().now() - parseDurationMs(text, '--since')).toISOString();
  const time = Date.parse(text);
  if (Number.isNaN(time))
    throw new UsageError(
      `--since takes a duration like 7d or a time like 2026-11-01T00:00:00Z, got ${JSON.stringify(text)}`,
    );
  return new Date(time).toISOString();
}

export function registerReports(program: Command): void {
  program
    .command('reports')
    .description('reports of agent runs, newest first')
    .option('--machine <name>', 'only this machine')
    .option('--since <when>', 'only runs started since (7d, 12h, or an ISO time)')
    .option('--failed', 'only failed runs')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (flags: { machine?: string; since?: string; failed?: boolean; limit: string }, command: Command) => {
      const client = await clientFor(command);
      try {
        const query = {
          machine: flags.machine,
          since: flags.since ? sinceOf(flags.since) : undefined,
          state: flags.failed ? 'failed' : undefined,
          limit: flags.limit,
        };
        const { runs } = await client.http.call<{ runs: RunView[] }>('GET', '/runs', { query });
        if (globals(command).json) {
          printJson(runs);
          return;
        }
        if (runs.length === 0) {
          process.stdout.write('no runs reported\n');
          return;
        }
        const times = await serverTimeFormat(client);
        printTable(
          runs.map((run) => ({
            started: formatWhen(run.startedAt, times),
            machine: run.machine,
            result: run.state,
            image: run.image,
            took: run.durationMs === null ? null : formatDuration(run.durationMs),
            read: formatBytes(run.bytesRead),
            uploaded: formatBytes(run.bytesUploaded),
            chunks: `${run.chunksNew} new, ${run.chunksReused} reused`,
            note:
              run.error ??
              (run.warnings.length
                ? plural(run.warnings.length, 'warning')
                : run.attempts > 1
                  ? plural(run.attempts, 'attempt')
                  : null),
          })),
          ['started', 'machine', 'result', 'image', 'took', 'read', 'uploaded', 'chunks', 'note'],
        );
      } finally {
        await client.close();
      }
    });

  program
    .command('incidents')
    .description('incidents: failed or missed runs, silent agents, low space (open ones unless --all)')
    .option('--all', 'resolved ones too')
    .option('--machine <name>', 'only this machine')
    .action(async (flags: { all?: boolean; machine?: string }, command: Command) => {
      const client = await clientFor(command);
      try {
        const { incidents } = await client.http.call<{ incidents: IncidentView[] }>('GET', '/incidents', {
          query: { state: flags.all ? 'all' : 'open', machine: flags.machine },
        });
        if (globals(command).json) printJson(incidents);
        else if (incidents.length === 0) process.stdout.write(flags.all ? 'no incidents\n' : 'no open incidents\n');
        else {
          const times = await serverTimeFormat(client);
          printTable(
            incidents.map((incident) => ({
              ...incident,
              opened: formatWhen(incident.openedAt, times),
              resolved: formatWhen(incident.resolvedAt, times),
            })),
            ['id', 'kind', 'subject', 'state', 'opened', 'resolved', 'summary'],
          );
        }
      } finally {
        await client.close();
      }
    });
}
