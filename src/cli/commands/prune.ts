// `b365 prune [--dry-run]`: apply every machine's retention now (the server also does
// it on its own schedule). Admin only.
import type { Command } from 'commander';
import { clientFor, globals } from '../context.js';
import { printJson } from '../output.js';
import { plural } from '../../core/plural.js';

interface PruneReport {
  dryRun: boolean;
  machines: { machine: string; kept: { id: string; reason: string }[]; removed: string[] }[];
  imagesKept: number;
  imagesRemoved: number;
  errors: string[];
}

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description("remove the images no retention rule keeps (each machine's policy)")
    .option('--machine <name>', 'only this machine')
    .option('--dry-run', 'say what would be removed, remove nothing')
    .option('--verbose', 'list kept images too, with the rule that keeps each')
    .action(async (flags: { machine?: string; dryRun?: boolean; verbose?: boolean }, command: Command) => {
      const client = await clientFor(command, 'transfer');
      try {
        const report = await client.http.call<PruneReport>('POST', '/prune', {
          json: { machine: flags.machine, dryRun: flags.dryRun === true },
        });
        if (globals(command).json) {
          printJson(report);
          return;
        }
        const verb = report.dryRun ? 'would remove' : 'removed';
        for (const machine of report.machines) {
          process.stdout.write(`${machine.machine}: keeps ${machine.kept.length}, ${verb} ${machine.removed.length}\n`);
          for (const id of machine.removed)
            process.stdout.write(`  ${report.dryRun ? 'would remove' : 'removed'} ${id}\n`);
          if (flags.verbose)
            for (const kept of machine.kept) process.stdout.write(`  keep ${kept.id} (${kept.reason})\n`);
        }
        for (const error of report.errors) process.stdout.write(`error: ${error}\n`);
        process.stdout.write(
          `${plural(report.imagesRemoved, 'image')} ${verb}, ${report.imagesKept} kept${report.dryRun ? ' (dry run)' : ''}\n`,
        );
      } finally {
        await client.close();
      }
    });
}
