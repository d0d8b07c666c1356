// `b365 image SOURCE --machine NAME`: capture a disk (block device or image file).
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { captureImage, type CaptureReport } from '../../../imaging/capture/image.js';
import { rawDiskPlan } from '../../../imaging/capture/plan.js';
import { describeDevice } from '../../../imaging/device.js';
import { defaultStateDirectory } from '../../client/session-state.js';
import { DEFAULT_CHUNK_SIZE, parseChunkSize } from '../../format/chunk.js';
import { assertMachineName } from '../../format/image-ref.js';
import { createLogger } from '../../log.js';
import { clientFor, globals, interruptSignal } from '../context.js';
import { byteProgress, formatBytes, formatDuration, printJson } from '../output.js';

interface ImageOptions {
  machine: string;
  raw?: boolean;
  chunkSize: string;
  full?: boolean;
  stateDir?: string;
  threads?: string;
}

export function printCaptureReport(report: CaptureReport): void {
  const reuse = report.chunksTotal - report.chunksHoles > 0 ? (100 * report.chunksReused) / (report.chunksTotal - report.chunksHoles) : 0;
  process.stdout.write(
    [
      `image ${report.image} committed${report.parent ? ` (base ${report.parent})` : ''}${report.resumed ? ', resumed an interrupted session' : ''}`,
      `  read ${formatBytes(report.bytesRead)} of ${formatBytes(report.bytesUsed)} used, uploaded ${formatBytes(report.bytesUploaded)} in ${report.chunksUploaded} chunks`,
      `  ${report.chunksReused} chunks reused (${reuse.toFixed(1)}%), ${report.chunksHoles} holes, ${formatDuration(report.durationMs)}`,
      ...report.warnings.map((warning) => `  warning: ${warning}`),
    ].join('\n') + '\n',
  );
}

export function registerImage(program: Command): void {
  program
    .command('image')
    .description('image a disk (block device or disk image file) into the repository')
    .argument('<source>', 'block device or disk image file')
    .requiredOption('--machine <name>', 'machine the image belongs to')
    .option('--raw', 'capture every byte as one raw volume (all-zero chunks are still holes)')
    .option('--chunk-size <size>', 'chunk size, 256K to 8M', String(DEFAULT_CHUNK_SIZE))
    .option('--full', 'do not trust the previous image; ask the server about every chunk')
    .option('--state-dir <dir>', 'where unfinished upload sessions are remembered')
    .option('--threads <n>', 'compression threads')
    .action(async (source: string, options: ImageOptions, command: Command) => {
      const global = globals(command);
      const machine = assertMachineName(options.machine);
      const chunkSize = parseChunkSize(options.chunkSize);
      const client = await clientFor(command);
      const device = await describeDevice(source);
      const handle = await fs.open(source, 'r');
      const disks = [rawDiskPlan(device, handle, chunkSize)];
      await handle.close();
      const progress = byteProgress(`imaging ${source}`, !global.json);
      const interrupt = interruptSignal();
      try {
        const report = await captureImage({
          client,
          machine,
          disks,
          stateDirectory: options.stateDir ?? defaultStateDirectory(),
          log: createLogger({ level: global.logLevel ?? 'warn' }),
          threads: options.threads ? Number(options.threads) : undefined,
          full: options.full,
          signal: interrupt.signal,
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
