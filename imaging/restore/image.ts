// Restore of a disk from an image onto a target device or image file, in an order that
// fails safe: the old table's signatures are wiped first, then every volume is written
// (gaps without table signatures), and the partition table comes last. Then every
// volume is read back against the content digest taken at capture, and checked.
import fs from 'node:fs/promises';
import { execa } from 'execa';
import type { RepositorySource } from '../../src/client/ports.js';
import { InterruptedError, NotFoundError, VerificationError } from '../../src/core/errors.js';
import { ContentHasher, digestOf } from '../../src/format/digest.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { Disk, Manifest, PartitionTable, Volume } from '../../src/format/manifest.js';
import { DeviceBlockReader } from '../block-reader.js';
import { describeDevice, readFully, type DeviceInfo } from '../device.js';
import { readPartitionTable } from '../partition/table.js';
import {
  applyDiskWrites,
  maskTableSignatures,
  restoreTableWrites,
  wipeTableSignatures,
  type DiskGeometry,
  type DiskWrite,
} from '../partition/write.js';
import { checkFstab, fsckVolumes, growFilesystem, type RestoreCheck } from './checks.js';
import { checkTarget, confirmErase, openForRestore } from './safety.js';
import { contentDigestOf, writeVolume } from './volume-writer.js';

export type { RestoreCheck };

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
  onProgress?(progress: { bytesDone: number; bytesTotal: number; stage: string }): void;
  onStage?(stage: string): void;
  signal?: AbortSignal;
}

export interface RestoreReport {
  image: string;
  disk: string;
  target: string;
  targetSize: number;
  bytesWritten: number;
  bytesFetched: number;
  chunksFetched: number;
  durationMs: number;
  partitionTable: PartitionTable;
  grown: string | null;
  checks: RestoreCheck[];
  verified: boolean;
}

export function pickDisk(manifest: Manifest, id?: string): Disk {
  const disk = id
    ? manifest.disks.find((candidate) => candidate.id === id || candidate.source === id)
    : manifest.disks[0];
  if (!disk)
    throw new NotFoundError(
      `image ${manifest.id} has no disk ${id}; it has ${manifest.disks.map((candidate) => `${candidate.id} (${candidate.source})`).join(', ')}`,
    );
  return disk;
}

/** Open the target for writing; an image file is created, or emptied to a sparse file of the right size. */
async function openTarget(target: string, disk: Disk): Promise<{ device: DeviceInfo; fresh: boolean }> {
  try {
    return { device: await describeDevice(target), fresh: false };
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  const handle = await fs.open(target, 'wx', 0o600);
  await handle.truncate(disk.size);
  await handle.close();
  return { device: await describeDevice(target), fresh: true };
}

function overlaps(a: { offset: number; bytes: Buffer }, offset: number, length: number): [number, number] | null {
  const start = Math.max(a.offset, offset);
  const end = Math.min(a.offset + a.bytes.length, offset + length);
  return start < end ? [start - offset, end - offset] : null;
}

/** Zero, in a copy, every part of [offset, offset+length) that one of `areas` covers. */
function maskAreas(bytes: Buffer, offset: number, areas: DiskWrite[]): Buffer {
  let masked = bytes;
  for (const area of areas) {
    const hit = overlaps(area, offset, bytes.length);
    if (!hit) continue;
    if (masked === bytes) masked = Buffer.from(bytes);
    masked.fill(0, hit[0], hit[1]);
  }
  return masked;
}

export async function restoreImage(options: RestoreOptions): Promise<RestoreReport> {
  const started = Date.now();
  const { client } = options;
  const stage = (text: string) => options.onStage?.(text);
  stage('reading the image');
  const { image, manifest } = await client.manifest(options.reference);
  const disk = pickDisk(manifest, options.disk);
  const indexes = new Map<string, FixedIndex>();
  for (const volume of disk.volumes) indexes.set(volume.id, await client.index(volume.index));

  const { device: target, fresh } = await openTarget(options.target, disk);
  await checkTarget(target, disk);
  if (!fresh && !(target.kind === 'file' && target.size === 0))
    await confirmErase(target, image.id, options.yes ?? false, options.signal);

  const source: DiskGeometry = { size: disk.size, sectorSize: disk.logicalSectorSize };
  const geometry: DiskGeometry = { size: target.size, sectorSize: target.logicalSectorSize };
  const firstGap = disk.volumes.find((volume) => volume.kind === 'gap' && volume.offset === 0);
  const firstSectorDigest = firstGap ? indexes.get(firstGap.id)!.get(0) : null;
  const firstSector = firstSectorDigest
    ? (await client.chunk(firstSectorDigest, firstGap!.chunkSize)).subarray(0, disk.logicalSectorSize)
    : undefined;
  const table =
    disk.partitionTable.type === 'none'
      ? null
      : restoreTableWrites(disk.partitionTable, source, geometry, {
          growLastPartition: options.grow ?? false,
          ...(firstSector ? { firstSector } : {}),
        });

  const report: RestoreReport = {
    image: image.id,
    disk: disk.id,
    target: options.target,
    targetSize: target.size,
    bytesWritten: 0,
    bytesFetched: 0,
    chunksFetched: 0,
    durationMs: 0,
    partitionTable: table?.table ?? disk.partitionTable,
    grown: null,
    checks: [],
    verified: false,
  };
  const bytesTotal = disk.volumes.reduce((sum, volume) => sum + volume.size, 0);
  let bytesDone = 0;
  const tableAreas = [...wipeTableSignatures(geometry), ...(table?.writes ?? [])];
  const handle = await openForRestore(target);
  const gapWritten = new Map<string, Map<number, string>>();
  try {
    // 1. Nothing that looks like a finished disk until the very end.
    stage('clearing the old partition table');
    if (target.kind === 'file') {
      await handle.truncate(0);
      await handle.truncate(Math.max(disk.size, target.size));
    } else {
      await applyDiskWrites(handle, wipeTableSignatures(geometry));
      await handle.sync();
    }

    // 2. Every volume, each chunk proven against its digest before it is written.
    const zeroRange =
      target.kind === 'block-device'
        ? async (offset: number, length: number) => {
            // --force: this process holds the device exclusively, blkdiscard would find it busy.
            const result = await execa(
              'blkdiscard',
              ['--force', '--zeroout', '--offset', String(offset), '--length', String(length), target.path],
              { reject: false },
            );
            if (result.exitCode !== 0) {
              const zeros = Buffer.alloc(Math.min(length, 8 << 20));
              for (let done = 0; done < length; done += zeros.length)
                await handle.write(zeros, 0, Math.min(zeros.length, length - done), offset + done);
            }
          }
        : undefined;
    for (const volume of disk.volumes) {
      stage(`writing ${volume.id}`);
      const written = new Map<number, string>();
      if (volume.kind === 'gap') gapWritten.set(volume.id, written);
      const result = await writeVolume({
        client,
        handle,
        volume,
        index: indexes.get(volume.id)!,
        targetOffset: volume.offset,
        // Zeros that are data (raw volumes) must reach a device; unused blocks need not.
        writeHoles: target.kind === 'block-device' && (volume.method === 'raw' || (options.zeroUnused ?? false)),
        zeroRange,
        transform:
          volume.kind === 'gap' || volume.kind === 'disk'
            ? (offset, bytes) => maskTableSignatures(geometry, offset, bytes)
            : undefined,
        onWritten:
          volume.kind === 'gap'
            ? (position, bytes) =>
                written.set(
                  position,
                  digestOf(maskAreas(bytes, volume.offset + position * volume.chunkSize, tableAreas)),
                )
            : undefined,
        parallel: options.parallel,
        signal: options.signal,
        onProgress: (bytes) => {
          bytesDone += bytes;
          options.onProgress?.({ bytesDone, bytesTotal, stage: 'writing' });
        },
      });
      report.bytesWritten += result.bytesWritten;
      report.bytesFetched += result.bytesFetched;
      report.chunksFetched += result.chunksFetched;
    }
    await handle.sync();

    // 3. The partition table, last.
    if (table) {
      stage('writing the partition table');
      await applyDiskWrites(handle, table.writes);
    } else if (disk.volumes.some((volume) => volume.kind === 'disk')) {
      // A disk without a table: put back the signature bytes held back above.
      const whole = disk.volumes.find((volume) => volume.kind === 'disk')!;
      const index = indexes.get(whole.id)!;
      for (const area of wipeTableSignatures(geometry)) {
        const position = Math.floor(area.offset / whole.chunkSize);
        if (position >= index.chunkCount) continue;
        const digest = index.get(position);
        const chunk = digest ? await client.chunk(digest, whole.chunkSize) : Buffer.alloc(index.chunkLength(position));
        const start = area.offset - position * whole.chunkSize;
        await applyDiskWrites(handle, [
          { offset: area.offset, bytes: chunk.subarray(start, start + area.bytes.length) },
        ]);
      }
    }
    await handle.sync();

    // 4. Read everything back.
    let checked = 0;
    const progress = (bytes: number) => {
      checked += bytes;
      options.onProgress?.({ bytesDone: checked, bytesTotal, stage: 'verifying' });
    };
    for (const volume of disk.volumes) {
      stage(`verifying ${volume.id}`);
      if (volume.kind === 'gap')
        report.checks.push(
          await verifyGap(handle, volume, indexes.get(volume.id)!, gapWritten.get(volume.id)!, tableAreas, progress),
        );
      else {
        const actual = await contentDigestOf(handle, target.kind, volume.offset, volume.size, progress);
        report.checks.push({
          check: `content digest of ${volume.id}`,
          ok: actual === volume.contentDigest,
          detail:
            actual === volume.contentDigest ? actual : `read back ${actual}, the image says ${volume.contentDigest}`,
        });
      }
    }
    if (table) {
      const { table: onDisk } = await readPartitionTable(
        new DeviceBlockReader(handle, 0, target.size, target.path),
        target.logicalSectorSize,
      );
      const same = JSON.stringify(comparableTable(onDisk)) === JSON.stringify(comparableTable(table.table));
      report.checks.push({
        check: 'partition table',
        ok: same,
        detail: same
          ? `${onDisk.type}, ${onDisk.partitions.length} partitions as captured${options.grow ? ' (last grown)' : ''}`
          : 'the table read back differs from the one written',
      });
    }
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

  // 5. Grow, then the field's own checks.
  if (options.grow && table) {
    const last = [...table.table.partitions]
      .filter((partition) => partition.kind !== 'extended')
      .sort((a, b) => b.start + b.size - (a.start + a.size))[0];
    const original = last
      ? disk.partitionTable.partitions.find((partition) => partition.number === last.number)
      : undefined;
    const volume = last ? disk.volumes.find((candidate) => candidate.partitionNumber === last.number) : undefined;
    if (last && original && volume && last.size > original.size) {
      stage(`growing ${volume.id}`);
      const grown = await growFilesystem(options.target, volume, last.start, last.size);
      report.checks.push(grown);
      report.grown = `${volume.id}: ${original.size} → ${last.size} bytes`;
    }
  }
  if (!options.skipChecks) {
    stage('checking filesystems');
    const sizes = new Map(report.partitionTable.partitions.map((partition) => [partition.number, partition]));
    report.checks.push(
      ...(await fsckVolumes(
        options.target,
        disk.volumes
          .filter((volume) => volume.kind !== 'gap')
          .map((volume) => ({
            volume,
            offset: volume.offset,
            size: volume.partitionNumber ? (sizes.get(volume.partitionNumber)?.size ?? volume.size) : volume.size,
          })),
      )),
    );
    report.checks.push(...(await checkFstab(await describeDevice(options.target), disk, report.partitionTable)));
  }
  report.durationMs = Date.now() - started;
  report.verified = report.checks.every((check) => check.ok);
  if (!report.verified) {
    const failed = report.checks.filter((check) => !check.ok).map((check) => `${check.check}: ${check.detail}`);
    throw new VerificationError(`restore of ${image.id} onto ${options.target} did not verify: ${failed.join('; ')}`, {
      details: { report },
    });
  }
  return report;
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
  const exact = whole.digest() === volume.contentDigest;
  return {
    check: `content of ${volume.id}`,
    ok: mismatches === 0,
    detail:
      mismatches === 0
        ? exact
          ? `${volume.contentDigest} (byte for byte)`
          : 'equal apart from the partition table, rewritten for this disk'
        : `${mismatches} chunks differ, first at byte ${first}`,
  };
}
