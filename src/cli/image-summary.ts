// `b365 images show` for people: what an image holds (disks, partition table, every
// volume with its filesystem, usage and capture method), how it was made (chunk
// counts) and whether it has been verified. `--json` prints the manifest instead.
import type { ImageInfo } from '../client/repository.js';
import type { Disk, Manifest, Volume } from '../format/manifest.js';
import type { VerificationJob } from '../format/verification.js';
import { tableLines } from './output.js';
import { formatBytes, formatDuration } from '../core/units.js';
import { plural } from '../core/plural.js';
import { formatWhen, type TimeFormat } from './time-format.js';

/** The newest finished verification whose scope covered the image; null if none, undefined if this token cannot see them. */
export type LastVerification = VerificationJob | null | undefined;

export function lastVerificationOf(image: ImageInfo, jobs: VerificationJob[]): VerificationJob | null {
  const covers = (job: VerificationJob) =>
    job.scope.images.includes(image.id) ||
    (job.scope.all && job.startedAt !== null && job.startedAt >= image.createdAt);
  const finished = jobs.filter((job) => job.state === 'done' && covers(job));
  finished.sort((a, b) => (a.finishedAt ?? '').localeCompare(b.finishedAt ?? ''));
  return finished.at(-1) ?? null;
}

function verificationLine(image: ImageInfo, last: LastVerification, times: TimeFormat): string {
  // A failure marks the image itself, whichever job found it.
  if (image.state === 'failed') return `FAILED${image.stateReason ? `: ${image.stateReason}` : ''}`;
  if (last === undefined) return 'no failure known (this token cannot read verification history)';
  if (last === null) return 'not verified yet';
  return `ok, ${last.level} verification ${last.id} finished ${formatWhen(last.finishedAt, times)}`;
}

function chunkLine(chunks: number, holes: number, uploaded: number, reused: number): string {
  return `${plural(chunks, 'chunk')}: ${plural(holes, 'hole')}, ${uploaded} new, ${reused} reused`;
}

function headerLines(image: ImageInfo, manifest: Manifest, last: LastVerification, times: TimeFormat): string[] {
  const { stats } = manifest;
  return [
    `image     ${image.id}`,
    `machine   ${manifest.machine} (host ${manifest.client.hostname}, b365 ${manifest.client.version})`,
    `taken     ${formatWhen(image.createdAt, times)}, capture took ${formatDuration(stats.durationMs)}`,
    `parent    ${image.parent ?? 'none (a first image: nothing was reused)'}`,
    `verified  ${verificationLine(image, last, times)}`,
    `size      ${formatBytes(image.sizeBytes)} of disks, ${formatBytes(stats.bytesUsed)} in use, ${formatBytes(stats.bytesUploaded)} uploaded`,
    `chunks    ${chunkLine(stats.chunksTotal, stats.chunksHoles, stats.chunksUploaded, stats.chunksReused)}`,
  ];
}

function diskLine(disk: Disk): string {
  const table = disk.partitionTable;
  const tableText =
    table.type === 'none'
      ? 'no partition table'
      : `${table.type.toUpperCase()} partition table${table.diskGuid ? ` ${table.diskGuid}` : table.diskId ? ` ${table.diskId}` : ''}`;
  const identity = [disk.model, disk.serial ? `serial ${disk.serial}` : null].filter(Boolean).join(', ') || disk.source;
  return `disk ${disk.id}: ${identity}, ${formatBytes(disk.size)} (${disk.size} bytes, ${disk.logicalSectorSize}-byte sectors), ${tableText}`;
}

function volumeRow(disk: Disk, volume: Volume): Record<string, string | number | null> {
  const partition =
    volume.partitionNumber === null
      ? undefined
      : disk.partitionTable.partitions.find((entry) => entry.number === volume.partitionNumber);
  const fs = volume.filesystem;
  const names = [partition?.name, fs?.label].filter((name): name is string => Boolean(name));
  return {
    '#': volume.partitionNumber ?? volume.kind,
    name: [...new Set(names)].join(' / ') || null,
    filesystem: fs?.type ?? null,
    'used / size': fs
      ? `${formatBytes(fs.usedBytes)} / ${formatBytes(volume.size)}`
      : `- / ${formatBytes(volume.size)}`,
    method: volume.method,
    chunks: chunkLine(volume.stats.chunks, volume.stats.holes, volume.stats.chunksUploaded, volume.stats.chunksReused),
  };
}

/** The whole summary, one line per element. */
export function imageSummary(
  image: ImageInfo,
  manifest: Manifest,
  last: LastVerification,
  times: TimeFormat,
): string[] {
  const lines = headerLines(image, manifest, last, times);
  for (const disk of manifest.disks) {
    lines.push('', diskLine(disk));
    const rows = disk.volumes.map((volume) => volumeRow(disk, volume));
    lines.push(
      ...tableLines(rows, ['#', 'name', 'filesystem', 'used / size', 'method', 'chunks']).map((line) => `  ${line}`),
    );
  }
  // Capture repeats a volume's warnings at the image level: show each once.
  const warnings = [
    ...new Set([
      ...manifest.warnings,
      ...manifest.disks.flatMap((disk) => disk.volumes.flatMap((volume) => volume.warnings)),
    ]),
  ];
  if (warnings.length)
    lines.push('', `${plural(warnings.length, 'warning')}:`, ...warnings.map((warning) => `  ${warning}`));
  return lines;
}
