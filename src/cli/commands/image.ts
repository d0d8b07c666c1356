// `b365 image SOURCE --machine NAME`: capture a disk (block device or image file).
import type { Command } from 'commander';
import { captureImage, type CaptureReport } from '../../../imaging/capture/image.js';
import { planSources } from '../../../imaging/capture/sources.js';
import type { LiveMode } from '../../../imaging/live.js';
import { UsageError } from '../../core/errors.js';
import { limitUploadRate, TokenBucket } from '../../client/rate-limit.js';
import { defaultStateDirectory } from '../../client/session-state.js';
import { parseChunkSize } from '../../format/chunk.js';
import { assertMachineName } from '../../format/image-ref.js';
import { createLogger } from '../../core/log.js';
import { globals, interruptSignal, REPO_OPTION_HELP, repositoryFor } from '../context.js';
import { byteProgress, printJson } from '../output.js';
import { formatBytes, formatDuration, parseBytes } from '../../core/units.js';
import { plural } from '../../core/plural.js';

interface ImageOptions {
  machine: string;
  raw?: boolean;
  freeze?: boolean;
  crashConsistent?: boolean;
  chunkSize: string;
  full?: boolean;
  stateDir?: string;
  threads?: string;
  limitRate?: string;
}

export function printCaptureReport(report: CaptureReport): void {
  const reuse =
    report.chunksTotal - report.chunksHoles > 0
      ? (100 * report.chunksReused) / (report.chunksTotal - report.chunksHoles)
      : 0;
  process.stdout.write(
    `${[
      `image ${report.image} committed${report.parent ? ` (base ${report.parent})` : ''}${report.resumed ? ', resumed an interrupted session' : ''}`,
      `  read ${formatBytes(report.bytesRead)} of ${formatBytes(report.bytesUsed)} used, uploaded ${formatBytes(report.bytesUploaded)} in ${plural(report.chunksUploaded, 'chunk')}`,
      `  ${plural(report.chunksReused, 'chunk')} reused (${reuse.toFixed(1)}%), ${plural(report.chunksHoles, 'hole')}, ${formatDuration(report.durationMs)}`,
      ...report.warnings.map((warning) => `  warning: ${warning}`),
    ].join('\n')}\n`,
  );
}

export function registerImage(program: Command): void {
  program
    .command('image')
    .usage('DISK... --machine NAME [--freeze | --crash-consistent] [--raw] [--full] [options]')
    .description('image a disk (block device or disk image file) into the repository')
    .argument('<sources...>', 'block devices or disk image files (several disks make one image)')
    .requiredOption('--machine <name>', 'machine the image belongs to')
    .option('--raw', 'capture every byte as one raw volume (all-zero chunks are still holes)')
    .option('--freeze', 'freeze filesystems mounted read-write while they are read (fsfreeze)')
    .option('--crash-consistent', 'image filesystems mounted read-write as they are, like a power cut would leave them')
    .option('--chunk-size <size>', 'chunk size, 256K to 8M, or auto (512K, larger for volumes over 512 GiB)', 'auto')
    .option('--full', 'do not trust the previous image; ask the server about every chunk')
    .option('--state-dir <dir>', 'where unfinished upload sessions are remembered')
    .option('--threads <n>', 'compression threads')
    .option('--repo <dir>', REPO_OPTION_HELP)
    .option('--limit-rate <rate>', 'upload at most RATE bytes per second, e.g. 20M (MiB/s) or 512K')
    .action(async (sources: string[], options: ImageOptions, command: Command) => {
      const global = globals(command);
      const machine = assertMachineName(options.machine);
      const chunkSize = options.chunkSize === 'auto' ? 'auto' : parseChunkSize(options.chunkSize);
      if (options.freeze && options.crashConsistent)
        throw new UsageError('choose --freeze or --crash-consistent, not both');
      const rate = options.limitRate === undefined ? null : parseBytes(options.limitRate, '--limit-rate');
      const live: LiveMode = options.freeze ? 'freeze' : options.crashConsistent ? 'crash-consistent' : 'refuse';
      const { disks, beforeVolume } = await planSources(sources, { chunkSize, raw: options.raw, live });
      const client = await repositoryFor(command, 'transfer', 'create');
      const progress = byteProgress(`imaging ${sources.join(', ')}`, !global.json);
      const interrupt = interruptSignal();
      try {
        const report = await captureImage({
          client: rate === null ? client : limitUploadRate(client, new TokenBucket(rate), interrupt.signal),
          machine,
          disks,
          stateDirectory: options.stateDir ?? defaultStateDirectory(),
          log: createLogger({ level: global.logLevel ?? 'warn' }),
          threads: options.threads ? Number(options.threads) : undefined,
          full: options.full,
          signal: interrupt.signal,
          beforeVolume,
          onProgress: ({ bytesDone, bytesTotal }) => progress.update(bytesDone, bytesTotal),
        });
        progress.stop();
        if (global.json) printJson(report);
        else printCaptureReport(report);
      } finally {
        progress.stop();
        interrupt.dispose();
        await client.close();
      }
    });
}
