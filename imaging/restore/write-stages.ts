// The writing stages of a restore, in the order that fails safe: the old table's
// signatures go first, then every volume (each chunk proven against its digest, table
// signatures held back), and the partition table last.
import { digestOf } from '../../src/format/digest.js';
import { applyDiskWrites, maskTableSignatures, wipeTableSignatures } from '../partition/write.js';
import { maskAreas } from './masked-areas.js';
import type { PlannedVolume } from './plan.js';
import { indexOf, type RestoreRun } from './run.js';
import { zeroRangeOf } from './target.js';
import { writeVolume } from './volume-writer.js';

/** Nothing that looks like a finished disk until the very end. */
export async function clearOldTable(run: RestoreRun): Promise<void> {
  const { plan, handle } = run;
  run.onStage?.('clearing the old partition table');
  if (plan.target.kind === 'file') {
    await handle.truncate(0);
    await handle.truncate(Math.max(plan.disk.size, plan.target.size));
  } else {
    await applyDiskWrites(handle, wipeTableSignatures(plan.geometry), run.report.target);
    await handle.sync();
  }
}

/** Every volume of the plan, each chunk proven against its digest before it is written. */
export async function writeVolumes(run: RestoreRun): Promise<void> {
  const zeroRange = zeroRangeOf(run.plan.target, run.handle);
  let bytesDone = 0;
  const progress = (bytes: number) => {
    bytesDone += bytes;
    run.onProgress?.({ bytesDone, bytesTotal: run.plan.bytesTotal, stage: 'writing' });
  };
  for (const planned of run.plan.volumes) {
    run.onStage?.(`writing ${planned.volume.id}`);
    const result = await writeVolume({
      client: run.source,
      handle: run.handle,
      targetName: run.report.target,
      volume: planned.volume,
      index: indexOf(run, planned.volume.id),
      targetOffset: planned.volume.offset,
      writeHoles: planned.writeHoles,
      zeroRange,
      transform: planned.maskSignatures
        ? (offset, bytes) => maskTableSignatures(run.plan.geometry, offset, bytes)
        : undefined,
      onWritten: recordGapWrites(run, planned),
      parallel: run.parallel,
      signal: run.signal,
      onProgress: progress,
    });
    run.report.bytesWritten += result.bytesWritten;
    run.report.bytesFetched += result.bytesFetched;
    run.report.chunksFetched += result.chunksFetched;
  }
  await run.handle.sync();
}

/** A gap is read back chunk by chunk against what was written there, table areas left out. */
function recordGapWrites(
  run: RestoreRun,
  planned: PlannedVolume,
): ((position: number, bytes: Buffer) => void) | undefined {
  const { volume } = planned;
  if (volume.kind !== 'gap') return undefined;
  const written = new Map<number, string>();
  run.gapWritten.set(volume.id, written);
  return (position, bytes) =>
    written.set(position, digestOf(maskAreas(bytes, volume.offset + position * volume.chunkSize, run.plan.tableAreas)));
}

/** The partition table, last; a disk without one gets back the signature bytes held back. */
export async function writeTable(run: RestoreRun): Promise<void> {
  const { plan, handle } = run;
  if (plan.table) {
    run.onStage?.('writing the partition table');
    await applyDiskWrites(handle, plan.table.writes, run.report.target);
  } else await restoreHeldBackSignatures(run);
  await handle.sync();
}

async function restoreHeldBackSignatures(run: RestoreRun): Promise<void> {
  const whole = run.plan.disk.volumes.find((volume) => volume.kind === 'disk');
  if (!whole) return;
  const index = indexOf(run, whole.id);
  for (const area of wipeTableSignatures(run.plan.geometry)) {
    const position = Math.floor(area.offset / whole.chunkSize);
    if (position >= index.chunkCount) continue;
    const digest = index.get(position);
    const chunk = digest ? await run.source.chunk(digest, whole.chunkSize) : Buffer.alloc(index.chunkLength(position));
    const start = area.offset - position * whole.chunkSize;
    await applyDiskWrites(
      run.handle,
      [{ offset: area.offset, bytes: chunk.subarray(start, start + area.bytes.length) }],
      run.report.target,
    );
  }
}
