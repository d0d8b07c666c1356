// After the writes, every volume is read back: each against the content digest taken at
// capture, a gap chunk by chunk against what was written there (its table areas were
// rewritten for the target), and the partition table against the one planned.
import type fs from 'node:fs/promises';
import { ContentHasher, digestOf } from '../../src/format/digest.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { PartitionTable, Volume } from '../../src/format/manifest.js';
import { DeviceBlockReader } from '../block-reader.js';
import { readFully } from '../device.js';
import { readPartitionTable } from '../partition/table.js';
import type { DiskWrite } from '../partition/write.js';
import type { RestoreCheck } from './checks.js';
import { maskAreas } from './masked-areas.js';
import { indexOf, type RestoreRun } from './run.js';
import { contentDigestOf } from './volume-writer.js';

/** Reads every volume back; one check per volume in the report. */
export async function verifyVolumes(run: RestoreRun): Promise<void> {
  const { plan, handle } = run;
  let checked = 0;
  const progress = (bytes: number) => {
    checked += bytes;
    run.onProgress?.({ bytesDone: checked, bytesTotal: plan.bytesTotal, stage: 'verifying' });
  };
  for (const { volume } of plan.volumes) {
    run.onStage?.(`verifying ${volume.id}`);
    if (volume.kind === 'gap') {
      const written = run.gapWritten.get(volume.id) ?? new Map<number, string>();
      run.report.checks.push(
        await verifyGap(handle, volume, indexOf(run, volume.id), written, plan.tableAreas, progress),
      );
      continue;
    }
    const actual = await contentDigestOf(handle, plan.target.kind, volume.offset, volume.size, progress);
    run.report.checks.push({
      check: `content digest of ${volume.id}`,
      ok: actual === volume.contentDigest,
      detail: actual === volume.contentDigest ? actual : `read back ${actual}, the image says ${volume.contentDigest}`,
    });
  }
}

/**
 * A gap holds the partition table's sectors, which the restore rewrote for the target
 * (on a larger disk they differ on purpose): compare everything else, chunk by chunk,
 * against what was written there. `written` holds digests already masked the same way.
 */
async function verifyGap(
  handle: fs.FileHandle,
  volume: Volume,
  index: FixedIndex,
  written: Map<number, string>,
  areas: DiskWrite[],
  progress: (bytes: number) => void,
): Promise<RestoreCheck> {
  const buffer = Buffer.alloc(volume.chunkSize);
  const whole = new ContentHasher();
  let mismatches = 0;
  let first = -1;
  for (let position = 0; position < index.chunkCount; position++) {
    const length = index.chunkLength(position);
    const offset = volume.offset + position * volume.chunkSize;
    const view = buffer.subarray(0, length);
    await readFully(handle, view, 0, length, offset, `verification of ${volume.id}`);
    whole.update(view);
    const expected = written.get(position) ?? digestOf(Buffer.alloc(length));
    if (digestOf(maskAreas(view, offset, areas)) !== expected) {
      mismatches++;
      if (first < 0) first = offset;
    }
    progress(length);
  }
  return gapCheck(volume, mismatches, first, whole.digest() === volume.contentDigest);
}

function gapCheck(volume: Volume, mismatches: number, first: number, exact: boolean): RestoreCheck {
  let detail = `${mismatches} chunks differ, first at byte ${first}`;
  if (mismatches === 0)
    detail = exact
      ? `${volume.contentDigest} (byte for byte)`
      : 'equal apart from the partition table, rewritten for this disk';
  return { check: `content of ${volume.id}`, ok: mismatches === 0, detail };
}

/** The table read back from the target must be the one planned. */
export async function verifyTable(run: RestoreRun): Promise<void> {
  const { plan } = run;
  if (!plan.table) return;
  const { table: onDisk } = await readPartitionTable(
    new DeviceBlockReader(run.handle, 0, plan.target.size, plan.target.path),
    plan.target.logicalSectorSize,
  );
  const same = JSON.stringify(comparableTable(onDisk)) === JSON.stringify(comparableTable(plan.table.table));
  run.report.checks.push({
    check: 'partition table',
    ok: same,
    detail: same
      ? `${onDisk.type}, ${onDisk.partitions.length} partitions as captured${plan.growRequested ? ' (last grown)' : ''}`
      : 'the table read back differs from the one written',
  });
}

function comparableTable(table: PartitionTable) {
  return {
    type: table.type,
    diskGuid: table.diskGuid,
    diskId: table.diskId,
    partitions: [...table.partitions]
      .sort((a, b) => a.number - b.number)
      .map(({ number, kind, start, size, type, guid, name, attributes, bootable }) => ({
        number,
        kind,
        start,
        size,
        type,
        guid,
        name,
        attributes,
        bootable: bootable ?? false,
      })),
  };
}
