// `b365 image SOURCE --machine NAME`: capture a disk (block device or image file).
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { planDisk } from '../../../imaging/capture/disk-plan.js';
import { captureImage, type CaptureReport, type DiskPlan } from '../../../imaging/capture/image.js';
import { rawDiskPlan } from '../../../imaging/capture/plan.js';
import { describeDevice } from '../../../imaging/device.js';
import { checkLiveVolumes, diskMounts, freeze, type LiveMode, type VolumeMounts } from '../../../imaging/live.js';
import { UsageError } from '../../errors.js';
import { defaultStateDirectory } from '../../client/session-state.js';
import { parseChunkSize } from '../../format/chunk.js';
import { assertMachineName } from '../../format/image-ref.js';
import { createLogger } from '../../log.js';
import { clientFor, globals, interruptSignal } from '../context.js';
import { byteProgress, formatBytes, formatDuration, printJson } from '../output.js';

interface ImageOptions {
  machine: string;
  raw?: boolean;
  freeze?: boolean;
  crashConsistent?: boolean;
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
    .argument('<sources...>', 'block devices or disk image files (several disks make one image)')
    .requiredOption('--machine <name>', 'machine the image belongs to')
    .option('--raw', 'capture every byte as one raw volume (all-zero chunks are still holes)')
    .option('--freeze', 'freeze filesystems mounted read-write while they are read (fsfreeze)')
    .option('--crash-consistent', 'image filesystems mounted read-write as they are, like a power cut would leave them')
    .option('--chunk-size <size>', 'chunk size, 256K to 8M, or auto (256K, larger for volumes over 256 GiB)', 'auto')
    .option('--full', 'do not trust the previous image; ask the server about every chunk')
    .option('--state-dir <dir>', 'where unfinished upload sessions are remembered')
    .option('--threads <n>', 'compression threads')
    .action(async (sources: string[], options: ImageOptions, command: Command) => {
      const global = globals(command);
      const machine = assertMachineName(options.machine);
      const chunkSize = options.chunkSize === 'auto' ? 'auto' : parseChunkSize(options.chunkSize);
      if (options.freeze && options.crashConsistent) throw new UsageError('choose --freeze or --crash-consistent, not both');
      const live: LiveMode = options.freeze ? 'freeze' : options.crashConsistent ? 'crash-consistent' : 'refuse';
      const disks: DiskPlan[] = [];
      const mountsBySource = new Map<string, VolumeMounts[]>();
      for (const [position, source] of sources.entries()) {
        const device = await describeDevice(source);
        const handle = await fs.open(source, 'r');
        try {
          const plan = options.raw ? rawDiskPlan(device, handle, chunkSize, `disk${position}`) : (await planDisk(device, handle, { chunkSize }, `disk${position}`)).plan;
          const mounted = await diskMounts(device, plan.partitionTable.partitions);
          mountsBySource.set(source, checkLiveVolumes(mounted, live, source));
          disks.push(plan);
        } finally {
          await handle.close();
        }
      }
      const client = await clientFor(command);
      const progress = byteProgress(`imaging ${sources.join(', ')}`, !global.json);
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
          beforeVolume:
            live === 'freeze'
              ? async (disk, volume) => {
                  const mounted = (mountsBySource.get(disk.source) ?? []).filter((entry) => entry.partition === volume.partitionNumber && (volume.kind !== 'gap'));
                  const thaws: (() => Promise<void>)[] = [];
                  for (const entry of mounted) {
                    const writable = entry.mounts.find((mount) => !mount.readOnly);
                    if (writable) thaws.push(await freeze(writable.mountPoint, entry.node));
                  }
                  if (thaws.length === 0) return;
                  return async () => {
                    for (const thaw of thaws) await thaw();
                  };
                }
              : undefined,
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
