// What a capture tells: the image's totals and warnings (recorded in its manifest) and the
// report the CLI, the agent and the rescue program show, with one line per volume.
import type { ImageStats } from '../../src/format/manifest.js';
import type { CapturedDiskVolume } from './commit-repair.js';
import type { CaptureReport } from './image.js';
import type { DiskPlan } from './plan.js';
import type { CommittedImage, UploadSession } from './upload-session.js';

/** The image's totals over its volumes; `durationMs` is left to the caller. */
export function imageStatsOf(captured: CapturedDiskVolume[]): ImageStats {
  const stats: ImageStats = {
    bytesRead: 0,
    bytesUsed: 0,
    bytesUploaded: 0,
    chunksTotal: 0,
    chunksHoles: 0,
    chunksUploaded: 0,
    chunksReused: 0,
    durationMs: 0,
  };
  for (const { volume } of captured) {
    stats.bytesRead += volume.stats.bytesRead;
    stats.bytesUsed += volume.stats.bytesUsed;
    stats.bytesUploaded += volume.stats.bytesUploaded;
    stats.chunksTotal += volume.stats.chunks;
    stats.chunksHoles += volume.stats.holes;
    stats.chunksUploaded += volume.stats.chunksUploaded;
    stats.chunksReused += volume.stats.chunksReused;
  }
  return stats;
}

/** Warnings about the disks first, then about each volume in order. */
export function captureWarnings(disks: DiskPlan[], captured: CapturedDiskVolume[]): string[] {
  return [...disks.flatMap((disk) => disk.warnings ?? []), ...captured.flatMap(({ volume }) => volume.warnings)];
}

export interface ReportInputs {
  committed: CommittedImage;
  parent: string | null;
  session: Pick<UploadSession, 'id' | 'resumed'>;
  stats: ImageStats;
  captured: CapturedDiskVolume[];
  warnings: string[];
}

export function captureReportOf(inputs: ReportInputs, durationMs: number): CaptureReport {
  const { committed, session, captured } = inputs;
  return {
    image: committed.image.id,
    manifestDigest: committed.manifestDigest,
    parent: inputs.parent,
    session: session.id,
    resumed: session.resumed,
    ...inputs.stats,
    durationMs,
    volumes: captured.map(({ disk, volume }) => ({
      disk: disk.id,
      volume: volume.id,
      method: volume.method,
      filesystem: volume.filesystem?.type ?? null,
      size: volume.size,
      bytesUsed: volume.stats.bytesUsed,
      bytesUploaded: volume.stats.bytesUploaded,
      chunksUploaded: volume.stats.chunksUploaded,
      chunksReused: volume.stats.chunksReused,
      holes: volume.stats.holes,
      contentDigest: volume.contentDigest,
    })),
    warnings: inputs.warnings,
  };
}
