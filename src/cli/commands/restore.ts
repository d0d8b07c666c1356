// `b365 restore IMAGE --to TARGET`: write an image back onto a disk or image file.
import type { Command } from 'commander';
import { restoreImage, type RestoreReport } from '../../../imaging/restore/image.js';
import { globals, interruptSignal, REPO_OPTION_HELP, repositoryFor } from '../context.js';
import { byteProgress, printJson } from '../output.js';
import { formatBytes, formatDuration } from '../../core/units.js';
import { plural } from '../../core/plural.js';

export function printRestoreReport(report: RestoreReport): void {
  const lines = [
    `restored ${report.image} (${report.disk}) onto ${report.target}: wrote ${formatBytes(report.bytesWritten)}, fetched ${plural(report.chunksFetched, 'chunk')} in ${formatDuration(report.durationMs)}`,
    ...(report.grown ? [`  grown: ${report.grown}`] : []),
    ...report.checks.map((check) => `  ${check.ok ? 'ok  ' : 'FAIL'} ${check.check}: ${check.detail}`),
    report.verified ? 'restore verified' : 'restore did NOT verify',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .usage('IMAGE --to TARGET [--disk ID] [--yes] [--grow] [options]')
    .description('restore an image onto a disk or disk image file')
    .argument('<image>', 'image id (MACHINE@TIMESTAMP) or MACHINE@latest')
    .requiredOption('--to <target>', 'block device or image file to write')
    .option('--disk <id>', 'which disk of a multi-disk image (disk0, disk1, or its source path)')
    .option('--yes', 'do not ask for the device name to be typed back')
    .option('--grow', 'on a larger disk, extend the last partition and its filesystem to the end')
    .option('--zero-unused', 'on a block device, also zero the blocks the image holds as unused')
    .option('--skip-checks', 'skip fsck and /etc/fstab checks (content digests are still compared)')
    .option('--parallel <n>', 'chunks fetched at once', '12')
    .option('--repo <dir>', REPO_OPTION_HELP)
    .action(
      async (
        reference: string,
        options: {
          to: string;
          disk?: string;
          parallel: string;
          yes?: boolean;
          grow?: boolean;
          zeroUnused?: boolean;
          skipChecks?: boolean;
        },
        command: Command,
      ) => {
        const global = globals(command);
        const client = await repositoryFor(command, 'transfer', 'existing');
        const progress = byteProgress(`restoring ${reference}`, !global.json);
        const interrupt = interruptSignal();
        try {
          const report = await restoreImage({
            client,
            reference,
            target: options.to,
            disk: options.disk,
            yes: options.yes,
            grow: options.grow,
            zeroUnused: options.zeroUnused,
            skipChecks: options.skipChecks,
            parallel: Number(options.parallel),
            signal: interrupt.signal,
            onProgress: ({ bytesDone, bytesTotal, stage }) => progress.update(bytesDone, bytesTotal, stage),
          });
          progress.stop();
          if (global.json) printJson(report);
          else printRestoreReport(report);
        } finally {
          progress.stop();
          interrupt.dispose();
          await client.close();
        }
      },
    );
}
