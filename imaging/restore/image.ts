// Restore of a disk from an image onto a target device or image file, followed by a
// re-read of every written volume against the content digest taken at capture.
import fs from 'node:fs/promises';
import type { RepositoryClient } from '../../src/client/repository.js';
import { NotFoundError, UnsafeTargetError, VerificationError } from '../../src/errors.js';
import type { Disk, Manifest } from '../../src/format/manifest.js';
import { describeDevice, type DeviceInfo } from '../device.js';
import { contentDigestOf, writeVolume } from './volume-writer.js';

export interface RestoreOptions {
  client: RepositoryClient;
  reference: string;
  target: string;
  /** Which disk of a multi-disk image; the first by default. */
  disk?: string;
  parallel?: number;
  onProgress?(progress: { bytesDone: number; bytesTotal: number; stage: string }): void;
  signal?: AbortSignal;
}

export interface RestoreCheck {
  check: string;
  ok: boolean;
  detail: string;
}

export interface RestoreReport {
  image: string;
  disk: string;
  target: string;
  bytesWritten: number;
  bytesFetched: number;
  chunksFetched: number;
  durationMs: number;
  checks: RestoreCheck[];
  verified: boolean;
}

export function pickDisk(manifest: Manifest, id?: string): Disk {
  const disk = id ? manifest.disks.find((candidate) => candidate.id === id || candidate.source === id) : manifest.disks[0];
  if (!disk) throw new NotFoundError(`image ${manifest.id} has no disk ${id}; it has ${manifest.disks.map((candidate) => candidate.id).join(', ')}`);
  return disk;
}

export function describeTarget(device: DeviceInfo): string {
  const size = `${(device.size / 2 ** 30).toFixed(2)} GiB`;
  return [device.path, device.model, device.serial ? `serial ${device.serial}` : null, size].filter(Boolean).join(', ');
}

/** Open the target for writing; an image file is created or reset to the disk's size. */
async function prepareTarget(target: string, disk: Disk): Promise<{ handle: fs.FileHandle; device: DeviceInfo }> {
  let device: DeviceInfo | null = null;
  try {
    device = await describeDevice(target);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  if (!device || device.kind === 'file') {
    const handle = await fs.open(target, device ? 'r+' : 'w+', 0o600);
    // A fresh sparse file: holes read as zeros without being written.
    await handle.truncate(0);
    await handle.truncate(disk.size);
    return { handle, device: await describeDevice(target) };
  }
  if (device.size < disk.size) {
    throw new UnsafeTargetError(`target ${describeTarget(device)} is ${disk.size - device.size} bytes smaller than the ${disk.size}-byte source disk; nothing was written`);
  }
  return { handle: await fs.open(target, 'r+'), device };
}

export async function restoreImage(options: RestoreOptions): Promise<RestoreReport> {
  const started = Date.now();
  const { client } = options;
  const { image, manifest } = await client.manifest(options.reference);
  const disk = pickDisk(manifest, options.disk);
  const indexes = await Promise.all(disk.volumes.map((volume) => client.index(volume.index)));
  const { handle, device } = await prepareTarget(options.target, disk);
  const bytesTotal = disk.volumes.reduce((sum, volume) => sum + volume.size, 0);
  let bytesDone = 0;
  const report: RestoreReport = { image: image.id, disk: disk.id, target: options.target, bytesWritten: 0, bytesFetched: 0, chunksFetched: 0, durationMs: 0, checks: [], verified: false };
  try {
    for (const [position, volume] of disk.volumes.entries()) {
      const written = await writeVolume({
        client,
        handle,
        volume,
        index: indexes[position]!,
        targetOffset: volume.offset,
        // On a reset image file holes are already zeros; on a device a raw volume's
        // zeros are real data and must be written.
        writeHoles: device.kind === 'block-device' && volume.method === 'raw',
        parallel: options.parallel,
        signal: options.signal,
        onProgress: (bytes) => {
          bytesDone += bytes;
          options.onProgress?.({ bytesDone, bytesTotal, stage: 'writing' });
        },
      });
      report.bytesWritten += written.bytesWritten;
      report.bytesFetched += written.bytesFetched;
      report.chunksFetched += written.chunksFetched;
    }
    await handle.sync();
    let checked = 0;
    for (const volume of disk.volumes) {
      const actual = await contentDigestOf(handle, device.kind, volume.offset, volume.size, (bytes) => {
        checked += bytes;
        options.onProgress?.({ bytesDone: checked, bytesTotal, stage: 'verifying' });
      });
      report.checks.push({
        check: `content digest of ${volume.id}`,
        ok: actual === volume.contentDigest,
        detail: actual === volume.contentDigest ? actual : `read back ${actual}, image says ${volume.contentDigest}`,
      });
    }
  } finally {
    await handle.close();
  }
  report.durationMs = Date.now() - started;
  report.verified = report.checks.every((check) => check.ok);
  if (!report.verified) {
    const failed = report.checks.filter((check) => !check.ok).map((check) => `${check.check}: ${check.detail}`);
    throw new VerificationError(`restore of ${image.id} onto ${options.target} did not verify: ${failed.join('; ')}`, { details: { report } });
  }
  return report;
}
