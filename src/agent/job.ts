// One image run as a policy describes it: which disks (all fixed disks when it names
// none), raw or by filesystem, how to treat mounted filesystems; then the capture.
import { captureImage, type CaptureProgress, type CaptureReport } from '../../imaging/capture/image.js';
import { planSources } from '../../imaging/capture/sources.js';
import { RepositoryClient } from '../client/repository.js';
import { UserError } from '../core/errors.js';
import type { Policy } from '../format/policy.js';
import type { Logger } from '../core/log.js';
import { fixedDisks } from './disks.js';

export interface ImageJobOptions {
  server: string;
  token: string;
  /** The server's pinned certificate fingerprint, if any. */
  fingerprint?: string;
  machine: string;
  policy: Policy;
  stateDirectory: string;
  log: Logger;
  signal: AbortSignal;
  onDisks?(disks: string[]): void;
  onProgress?(progress: CaptureProgress & { stage: string }): void;
}

export async function imageJob(options: ImageJobOptions): Promise<CaptureReport> {
  const { policy } = options;
  const sources = policy.disks.length ? policy.disks : await fixedDisks();
  if (sources.length === 0)
    throw new UserError('nothing to image: the policy names no disk and this machine has no fixed disk');
  options.onDisks?.(sources);
  const { disks, beforeVolume } = await planSources(sources, {
    chunkSize: policy.chunkSize,
    raw: policy.raw,
    live: policy.live,
  });
  const client = new RepositoryClient({
    server: options.server,
    token: options.token,
    fingerprint: options.fingerprint,
    log: options.log,
    signal: options.signal,
  });
  let stage = 'starting';
  let last: CaptureProgress = { bytesDone: 0, bytesTotal: 0, bytesUploaded: 0 };
  try {
    return await captureImage({
      client,
      machine: options.machine,
      disks,
      stateDirectory: options.stateDirectory,
      log: options.log,
      signal: options.signal,
      beforeVolume,
      onStage: (name) => {
        stage = name;
        options.onProgress?.({ ...last, stage });
      },
      onProgress: (progress) => {
        last = progress;
        options.onProgress?.({ ...progress, stage });
      },
    });
  } finally {
    await client.close();
  }
}
