// From the names of disks to what captureImage needs: a plan per disk (its table and
// volumes), the live-safety check of its mounted filesystems, and the hook that
// freezes them while they are read. Shared by `b365 image` and the agent.
import fs from 'node:fs/promises';
import { describeDevice } from '../device.js';
import { checkLiveVolumes, diskMounts, freeze, type LiveMode, type VolumeMounts } from '../live.js';
import { planDisk } from './disk-plan.js';
import type { VolumeHooks } from './image.js';
import { type DiskPlan, rawDiskPlan } from './plan.js';

export interface SourcePlanOptions {
  /** Fixed chunk size, or 'auto' to pick one per volume. */
  chunkSize: number | 'auto';
  /** One raw volume per disk instead of reading its partitions. */
  raw?: boolean;
  live: LiveMode;
}

export async function planSources(
  sources: string[],
  options: SourcePlanOptions,
): Promise<{ disks: DiskPlan[]; beforeVolume: VolumeHooks['beforeVolume'] }> {
  const disks: DiskPlan[] = [];
  const mountsBySource = new Map<string, VolumeMounts[]>();
  for (const [position, source] of sources.entries()) {
    const device = await describeDevice(source);
    const handle = await fs.open(source, 'r');
    try {
      const plan = options.raw
        ? rawDiskPlan(device, handle, options.chunkSize, `disk${position}`)
        : (await planDisk(device, handle, { chunkSize: options.chunkSize }, `disk${position}`)).plan;
      const mounted = await diskMounts(device, plan.partitionTable.partitions);
      mountsBySource.set(source, checkLiveVolumes(mounted, options.live, source));
      disks.push(plan);
    } finally {
      await handle.close();
    }
  }
  const beforeVolume: VolumeHooks['beforeVolume'] =
    options.live === 'freeze'
      ? async (disk, volume) => {
          const mounted = (mountsBySource.get(disk.source) ?? []).filter(
            (entry) => entry.partition === volume.partitionNumber && volume.kind !== 'gap',
          );
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
      : undefined;
  return { disks, beforeVolume };
}
