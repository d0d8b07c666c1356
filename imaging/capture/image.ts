// Capture of a whole image, in stages: find the base image of each disk, open (or
// resume) the upload session, read and send every volume, send the indexes, and commit
// the manifest, repairing a commit refused for missing objects.
import type { CaptureRepository } from '../../src/client/ports.js';
import { InterruptedError, RepositoryFullError } from '../../src/core/errors.js';
import { type Logger, silentLogger } from '../../src/core/log.js';
import type { ImageStats, Volume } from '../../src/format/manifest.js';
import { loadBase, noBase } from './base.js';
import { type CapturedDiskVolume, resendMissing } from './commit-repair.js';
import { imageManifestOf } from './manifest.js';
import type { DiskPlan, VolumePlan } from './plan.js';
import { readVolumes } from './read-volumes.js';
import { captureReportOf, captureWarnings, imageStatsOf } from './report.js';
import { Uploader } from './uploader.js';
import { UploadSession } from './upload-session.js';

export interface CaptureProgress {
  bytesDone: number;
  bytesTotal: number;
  bytesUploaded: number;
}

export interface VolumeHooks {
  /** Called before a volume is read (fsfreeze goes here); the returned function after. */
  beforeVolume?(disk: DiskPlan, volume: VolumePlan): Promise<(() => Promise<void>) | void>;
}

export interface CaptureOptions extends VolumeHooks {
  client: CaptureRepository;
  machine: string;
  disks: DiskPlan[];
  stateDirectory: string;
  log?: Logger;
  threads?: number;
  onProgress?(progress: CaptureProgress): void;
  onStage?(stage: string): void;
  signal?: AbortSignal;
  /** Ignore the base image: compare every chunk with the server instead. */
  full?: boolean;
}

export interface CaptureReport extends ImageStats {
  image: string;
  manifestDigest: string;
  parent: string | null;
  session: string;
  resumed: boolean;
  volumes: {
    disk: string;
    volume: string;
    method: Volume['method'];
    filesystem: string | null;
    size: number;
    bytesUsed: number;
    bytesUploaded: number;
    chunksUploaded: number;
    chunksReused: number;
    holes: number;
    contentDigest: string;
  }[];
  warnings: string[];
}

export async function captureImage(options: CaptureOptions): Promise<CaptureReport> {
  const log = options.log ?? silentLogger;
  const started = Date.now();
  const startedAt = new Date().toISOString();
  const { client, machine, disks } = options;

  options.onStage?.('looking up the previous image');
  const base = options.full ? noBase() : await loadBase(client, machine, disks, log);
  const session = await UploadSession.open(client, {
    stateDirectory: options.stateDirectory,
    machine,
    sources: disks.map((disk) => disk.source),
    parent: base.image,
    log,
    createdAt: startedAt,
  });
  try {
    const captured = await readVolumes(options, new Uploader(client, session.id), base.keys);
    options.onStage?.('uploading indexes');
    await session.putIndexes(newIndexes(captured, base.indexes));
    const stats = imageStatsOf(captured);
    const warnings = captureWarnings(disks, captured);
    const manifest = imageManifestOf(
      { machine, parent: base.image, disks, captured, stats, warnings, startedAt },
      Date.now() - started,
    );
    options.onStage?.('committing');
    const committed = await session.commit(manifest, (missing) => resendMissing(client, session.id, captured, missing));
    return captureReportOf({ committed, parent: base.image, session, stats, captured, warnings }, Date.now() - started);
  } catch (error) {
    throw explainedFailure(error, session.id, options.signal);
  } finally {
    session.close();
  }
}

/** The encoded indexes of the captured volumes, but for those the base image already holds. */
function newIndexes(captured: CapturedDiskVolume[], held: Set<string>): Map<string, Buffer> {
  const indexes = new Map<string, Buffer>();
  for (const { index, volume } of captured) if (!held.has(volume.index)) indexes.set(volume.index, index.encode());
  return indexes;
}

/** A failure that leaves the session open says so: the next run of the same command resumes it. */
function explainedFailure(error: unknown, sessionId: string, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) {
    return new InterruptedError(
      `interrupted: nothing was committed; upload session ${sessionId} is kept and the upload resumes on the next run of the same command`,
      { cause: error },
    );
  }
  if (error instanceof RepositoryFullError) {
    return new RepositoryFullError(
      `${error.message}; nothing was committed; free space or prune, then run again — the upload resumes (session ${sessionId})`,
      { cause: error, details: error.details },
    );
  }
  return error;
}
