// What a restore does once the target is closed: grow the partition the plan grew and
// its filesystem, then the field's own checks (fsck of each filesystem, fstab).
import { describeDevice } from '../device.js';
import { checkFstab, fsckVolumes, growFilesystem } from './checks.js';
import type { RestorePlan } from './plan.js';
import type { RestoreReport } from './run.js';

export async function growLastFilesystem(
  plan: RestorePlan,
  report: RestoreReport,
  onStage?: (stage: string) => void,
): Promise<void> {
  if (!plan.grow) return;
  const { volume, from, to } = plan.grow;
  onStage?.(`growing ${volume.id}`);
  report.checks.push(await growFilesystem(report.target, volume, to.start, to.size));
  report.grown = `${volume.id}: ${from.size} → ${to.size} bytes`;
}

/** fsck of every restored filesystem at its size on the target, and the restored fstab. */
export async function fieldChecks(
  plan: RestorePlan,
  report: RestoreReport,
  onStage?: (stage: string) => void,
): Promise<void> {
  onStage?.('checking filesystems');
  const sizes = new Map(report.partitionTable.partitions.map((partition) => [partition.number, partition]));
  const volumes = plan.disk.volumes
    .filter((volume) => volume.kind !== 'gap')
    .map((volume) => ({
      volume,
      offset: volume.offset,
      size: volume.partitionNumber ? (sizes.get(volume.partitionNumber)?.size ?? volume.size) : volume.size,
    }));
  report.checks.push(...(await fsckVolumes(report.target, volumes)));
  report.checks.push(...(await checkFstab(await describeDevice(report.target), plan.disk, report.partitionTable)));
}
