// Restore of a disk from an image onto a target device or image file: a plan decided
// before anything is written (plan.ts), then stages in an order that fails safe (old
// table signatures wiped, volumes, table last), the read-back, growth and field checks.
import type { RepositorySource } from '../../src/client/ports.js';
import { InterruptedError, VerificationError } from '../../src/core/errors.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { Disk } from '../../src/format/manifest.js';
import type { RestoreCheck } from './checks.js';
import { fieldChecks, growLastFilesystem } from './finish.js';
import { firstGapOf, pickDisk, planRestore, type RestorePlan } from './plan.js';
import { verifyTable, verifyVolumes } from './read-back.js';
import { emptyReport, type RestoreProgress, type RestoreReport, type RestoreRun } from './run.js';
import { checkTargetFree, confirmErase, openForRestore } from './safety.js';
import { openTarget } from './target.js';
import { clearOldTable, writeTable, writeVolumes } from './write-stages.js';

export type { RestoreCheck, RestoreReport };
export { pickDisk };

export interface RestoreOptions {
  client: RepositorySource;
  reference: string;
  target: string;
  /** Which disk of a multi-disk image; the first by default. */
  disk?: string;
  /** Skip the typed confirmation. */
  yes?: boolean;
  /** Extend the last partition and its filesystem to the end of a larger target. */
  grow?: boolean;
  /** On a block device, zero what the image holds as unused (discard/zeroout where possible). */
  zeroUnused?: boolean;
  /** Skip fsck and fstab checks (the content digests are still compared). */
  skipChecks?: boolean;
  parallel?: number;
  onProgress?(progress: RestoreProgress): void;
  onStage?(stage: string): void;
  signal?: AbortSignal;
}

export async function restoreImage(options: RestoreOptions): Promise<RestoreReport> {
  const started = Date.now();
  options.onStage?.('reading the image');
  const { plan, indexes } = await prepareRestore(options);
  await checkTargetFree(plan.target);
  if (plan.confirmErase) await confirmErase(plan.target, plan.imageId, options.yes ?? false, options.signal);
  const report = emptyReport(plan, options.target);
  await writeAndReadBack(plan, indexes, report, options);
  await growLastFilesystem(plan, report, options.onStage);
  if (!options.skipChecks) await fieldChecks(plan, report, options.onStage);
  report.durationMs = Date.now() - started;
  return verified(report);
}

/** The manifest, every index of the chosen disk and the target, turned into a plan. */
export async function prepareRestore(
  options: Pick<RestoreOptions, 'client' | 'reference' | 'target' | 'disk' | 'grow' | 'zeroUnused'>,
): Promise<{ plan: RestorePlan; indexes: Map<string, FixedIndex> }> {
  const { client } = options;
  const { image, manifest } = await client.manifest(options.reference);
  const disk = pickDisk(manifest, options.disk);
  const indexes = new Map<string, FixedIndex>();
  for (const volume of disk.volumes) indexes.set(volume.id, await client.index(volume.index));
  const { device: target, fresh } = await openTarget(options.target, disk);
  const firstSector = await capturedFirstSector(client, disk, indexes);
  const plan = planRestore({
    imageId: image.id,
    disk,
    target,
    fresh,
    grow: options.grow ?? false,
    zeroUnused: options.zeroUnused ?? false,
    ...(firstSector ? { firstSector } : {}),
  });
  return { plan, indexes };
}

/** Sector 0 as captured (boot code, disk signature), when the image holds it in a gap. */
async function capturedFirstSector(
  client: RepositorySource,
  disk: Disk,
  indexes: Map<string, FixedIndex>,
): Promise<Buffer | undefined> {
  const firstGap = firstGapOf(disk);
  const digest = firstGap ? indexes.get(firstGap.id)!.get(0) : null;
  if (!firstGap || !digest) return undefined;
  return (await client.chunk(digest, firstGap.chunkSize)).subarray(0, disk.logicalSectorSize);
}

/** Every write and the read-back, on one exclusive handle; an interruption says what it left. */
async function writeAndReadBack(
  plan: RestorePlan,
  indexes: Map<string, FixedIndex>,
  report: RestoreReport,
  options: RestoreOptions,
): Promise<void> {
  const handle = await openForRestore(plan.target);
  const run: RestoreRun = {
    plan,
    source: options.client,
    indexes,
    handle,
    report,
    gapWritten: new Map(),
    parallel: options.parallel,
    signal: options.signal,
    onProgress: options.onProgress,
    onStage: options.onStage,
  };
  try {
    await clearOldTable(run);
    await writeVolumes(run);
    await writeTable(run);
    await verifyVolumes(run);
    await verifyTable(run);
  } catch (error) {
    if (options.signal?.aborted) {
      throw new InterruptedError(
        `interrupted: ${options.target} is partially written and holds no usable disk now; run the same restore again to write it whole from the start`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    await handle.close();
  }
}

function verified(report: RestoreReport): RestoreReport {
  report.verified = report.checks.every((check) => check.ok);
  if (report.verified) return report;
  const failed = report.checks.filter((check) => !check.ok).map((check) => `${check.check}: ${check.detail}`);
  throw new VerificationError(`restore of ${report.image} onto ${report.target} did not verify: ${failed.join('; ')}`, {
    details: { report },
  });
}
