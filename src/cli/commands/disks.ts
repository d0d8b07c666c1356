// `b365 disks [DISK...]`: what can be imaged, and what is on it.
import type { Command } from 'commander';
import { discoverDisks } from '../../../imaging/discovery.js';
import { globals } from '../context.js';
import { printJson } from '../output.js';
import { formatBytes } from '../../core/units.js';

export function registerDisks(program: Command): void {
  program
    .command('disks')
    .description('list disks (or the given devices and disk image files) with their partitions and filesystems')
    .argument('[disks...]', 'block devices or disk image files (default: every disk)')
    .action(async (paths: string[], _options: unknown, command: Command) => {
      const disks = await discoverDisks(paths);
      if (globals(command).json) return printJson({ disks });
      for (const disk of disks) {
        const identity = [disk.model, disk.serial ? `serial ${disk.serial}` : null].filter(Boolean).join(', ');
        process.stdout.write(
          `${disk.path}  ${formatBytes(disk.size)}  ${disk.partitionTable?.toUpperCase() ?? 'no partition table'}  sectors ${disk.logicalSectorSize}/${disk.physicalSectorSize}${identity ? `  ${identity}` : ''}\n`,
        );
        for (const partition of disk.partitions) {
          const usage =
            partition.usedBytes !== null && partition.fsSizeBytes
              ? `  ${formatBytes(partition.usedBytes)} of ${formatBytes(partition.fsSizeBytes)} used (${Math.round((100 * partition.usedBytes) / partition.fsSizeBytes)}%)`
              : '';
          const mounted = partition.mountPoints.length ? `  mounted at ${partition.mountPoints.join(', ')}` : '';
          process.stdout.write(
            `  ${String(partition.number).padStart(2)}  ${formatBytes(partition.size).padStart(10)}  ${partition.filesystem ?? '-'}${partition.fsLabel ? ` "${partition.fsLabel}"` : ''}${partition.uuid ? ` ${partition.uuid}` : ''}${partition.label ? `  [${partition.label}]` : ''}${usage}${mounted}\n`,
          );
        }
      }
    });
}
