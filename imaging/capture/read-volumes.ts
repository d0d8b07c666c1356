// The reading stage of a capture: every planned volume of every disk in order, each
// between the caller's before and after hooks (a filesystem freeze), its new chunks
// compressed on workers and handed to the uploader, which has sent them all on return.
import fs from 'node:fs/promises';
import type { CapturedDiskVolume } from './commit-repair.js';
import { CompressPool } from './compress-pool.js';
import { DigestKeySet } from './digest-set.js';
import type { CaptureOptions } from './image.js';
import { bytesToRead, type DiskPlan, largestChunkSize, type VolumePlan } from './plan.js';
import type { Uploader } from './uploader.js';
import { type CaptureContext, type CapturedVolume, captureVolume, SlotPool } from './volume.js';

type ReadOptions = Pick<CaptureOptions, 'disks' | 'threads' | 'beforeVolume' | 'onProgress' | 'onStage' | 'signal'>;

/** Read and send every volume; `base` holds the digest keys that need not be sent. */
export async function readVolumes(
  options: ReadOptions,
  uploader: Uploader,
  base: DigestKeySet,
): Promise<CapturedDiskVolume[]> {
  const pool = new CompressPool(options.threads);
  try {
    const context = readContext(options, uploader, base, pool);
    const captured: CapturedDiskVolume[] = [];
    for (const disk of options.disks) captured.push(...(await readDisk(options, context, disk)));
    options.onStage?.('finishing uploads');
    await uploader.drain();
    return captured;
  } finally {
    await pool.close();
  }
}

/** What every volume's capture shares: workers, read buffers, the uploader, progress. */
function readContext(
  options: ReadOptions,
  uploader: Uploader,
  base: DigestKeySet,
  pool: CompressPool,
): Omit<CaptureContext, 'handle' | 'source'> {
  const bytesTotal = bytesToRead(options.disks);
  let bytesDone = 0;
  return {
    pool,
    slots: new SlotPool(largestChunkSize(options.disks), pool.threads * 3 + 2),
    uploader,
    base,
    seen: new DigestKeySet(),
    signal: options.signal,
    onProgress: (bytes) => {
      bytesDone += bytes;
      options.onProgress?.({ bytesDone, bytesTotal, bytesUploaded: uploader.stats.bytesUploaded });
    },
  };
}

async function readDisk(
  options: ReadOptions,
  shared: Omit<CaptureContext, 'handle' | 'source'>,
  disk: DiskPlan,
): Promise<CapturedDiskVolume[]> {
  const captured: CapturedDiskVolume[] = [];
  const handle = await fs.open(disk.source, 'r');
  try {
    const context: CaptureContext = { ...shared, handle, source: disk.source };
    for (const plan of disk.volumes) {
      options.onStage?.(`reading ${disk.source} ${plan.id}`);
      const { volume, index } = await readVolumeHooked(options, context, disk, plan);
      captured.push({ disk, plan, volume, index });
    }
  } finally {
    await handle.close();
  }
  return captured;
}

/** One volume between the caller's hooks; a volume frozen by them is planned again first. */
async function readVolumeHooked(
  options: ReadOptions,
  context: CaptureContext,
  disk: DiskPlan,
  plan: VolumePlan,
): Promise<CapturedVolume> {
  const after = await options.beforeVolume?.(disk, plan);
  try {
    if (after) await plan.refresh?.();
    return await captureVolume(context, plan);
  } finally {
    if (after) await after();
  }
}
