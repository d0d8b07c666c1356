// Capture of one volume: read → zero unused → hash → skip what the base image or this
// run already has → compress (on workers) → offer to the uploader. Reads are sequential
// so the content digest of the whole volume is computed on the way.
import type { FileHandle } from 'node:fs/promises';
import { isAllZero } from '../../src/format/chunk.js';
import { ContentHasher, digestOf } from '../../src/format/digest.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import type { Volume, VolumeStats } from '../../src/format/manifest.js';
import { readFully } from '../device.js';
import type { Range, RangeList } from '../ranges.js';
import type { CompressPool } from './compress-pool.js';
import type { DigestKeySet } from './digest-set.js';
import type { Uploader } from './uploader.js';

/** The manifest's volume fields known before reading: where, what, how and in what chunk size. */
export interface VolumePlan
  extends Pick<Volume, 'id' | 'kind' | 'partitionNumber' | 'offset' | 'size' | 'filesystem' | 'method' | 'chunkSize'> {
  /** Byte ranges of the volume worth reading; everything else is captured as zeros. */
  readable: RangeList;
  warnings: string[];
  /** Read the used-block map again (after a freeze flushed it). */
  refresh?: () => Promise<void>;
}

/** A compact key for "have we got this digest": the first 52 bits. A false match only
 * means a chunk is not sent, which the commit check catches and the repair pass sends. */
export function digestKey(digest: string): number {
  return parseInt(digest.slice(0, 13), 16);
}

export class SlotPool {
  readonly shared: SharedArrayBuffer;
  private readonly free: number[];
  private readonly waiters: ((slot: number) => void)[] = [];

  constructor(
    readonly slotSize: number,
    readonly count: number,
  ) {
    this.shared = new SharedArrayBuffer(slotSize * count);
    this.free = Array.from({ length: count }, (_, index) => index);
  }

  view(slot: number, length = this.slotSize): Buffer {
    return Buffer.from(this.shared, slot * this.slotSize, length);
  }

  acquire(): Promise<number> {
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(slot: number): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(slot);
    else this.free.push(slot);
  }
}

export interface CaptureContext {
  handle: FileHandle;
  source: string;
  pool: CompressPool;
  slots: SlotPool;
  uploader: Uploader;
  /** Digest keys the base image already holds: never compressed, never sent. */
  base: DigestKeySet;
  /** Digest keys already handled in this run. */
  seen: DigestKeySet;
  onProgress(bytesUsedDone: number): void;
  signal?: AbortSignal;
}

export interface CapturedVolume {
  volume: Volume;
  index: FixedIndex;
}

/** Merge spans whose gap is small enough that one read beats two. */
function readGroups(spans: Range[], maxGap = 256 << 10): Range[] {
  const groups: [number, number][] = [];
  for (const [start, end] of spans) {
    const last = groups[groups.length - 1];
    if (last && start - last[1] <= maxGap) last[1] = end;
    else groups.push([start, end]);
  }
  return groups;
}

/**
 * Read the used spans of one chunk into `bytes` and zero everything else: blocks the
 * filesystem does not use never make a chunk unique. Returns the bytes read.
 */
export async function readChunkInto(
  handle: FileHandle,
  plan: VolumePlan,
  spans: Range[],
  chunkStart: number,
  bytes: Buffer,
  where: string,
): Promise<number> {
  const length = bytes.length;
  const fullyRead = spans.length === 1 && spans[0]![0] === 0 && spans[0]![1] === length;
  if (!fullyRead) bytes.fill(0);
  let bytesRead = 0;
  for (const [groupStart, groupEnd] of readGroups(spans)) {
    await readFully(handle, bytes, groupStart, groupEnd - groupStart, plan.offset + chunkStart + groupStart, where);
    bytesRead += groupEnd - groupStart;
  }
  if (!fullyRead) {
    let covered = 0;
    for (const [start, end] of spans) {
      if (start > covered) bytes.fill(0, covered, start);
      covered = end;
    }
    if (covered < length) bytes.fill(0, covered, length);
  }
  return bytesRead;
}

export async function captureVolume(context: CaptureContext, plan: VolumePlan): Promise<CapturedVolume> {
  const index = new FixedIndex(plan.chunkSize, plan.size);
  const content = new ContentHasher();
  const stats: VolumeStats = {
    chunks: index.chunkCount,
    holes: 0,
    bytesRead: 0,
    bytesUsed: plan.readable.totalBytes,
    chunksUploaded: 0,
    chunksReused: 0,
    bytesUploaded: 0,
  };
  const cursor = plan.readable.cursor();
  const compressions: Promise<unknown>[] = [];
  const where = `${context.source} volume ${plan.id}`;

  for (let position = 0; position < index.chunkCount; position++) {
    if (context.signal?.aborted) throw context.signal.reason;
    const chunkStart = position * plan.chunkSize;
    const length = index.chunkLength(position);
    const spans = cursor.within(chunkStart, chunkStart + length);
    const usedHere = spans.reduce((sum, [start, end]) => sum + (end - start), 0);
    if (spans.length === 0) {
      content.updateZeros(length);
      stats.holes++;
      continue;
    }
    const slot = await context.slots.acquire();
    let released = false;
    const release = () => {
      if (!released) context.slots.release(slot);
      released = true;
    };
    try {
      const bytes = context.slots.view(slot, length);
      stats.bytesRead += await readChunkInto(context.handle, plan, spans, chunkStart, bytes, where);
      content.update(bytes);
      context.onProgress(usedHere);
      if (isAllZero(bytes)) {
        stats.holes++;
        continue;
      }
      const digest = digestOf(bytes);
      index.set(position, digest);
      const key = digestKey(digest);
      if (context.base.has(key) || context.seen.has(key)) {
        stats.chunksReused++;
        continue;
      }
      context.seen.add(key);
      const frame = context.pool.compress(context.slots.shared, slot * context.slots.slotSize, length);
      released = true;
      const compressed = frame.finally(() => context.slots.release(slot));
      compressions.push(
        compressed.then(
          () => undefined,
          () => undefined,
        ),
      );
      await context.uploader.offer(digest, compressed, length, (uploaded, sent) => {
        if (uploaded) {
          stats.chunksUploaded++;
          stats.bytesUploaded += sent;
        } else {
          stats.chunksReused++;
        }
      });
    } finally {
      release();
    }
  }
  await Promise.all(compressions);
  return {
    index,
    volume: {
      id: plan.id,
      kind: plan.kind,
      partitionNumber: plan.partitionNumber,
      offset: plan.offset,
      size: plan.size,
      filesystem: plan.filesystem,
      method: plan.method,
      chunkSize: plan.chunkSize,
      index: index.digest(),
      contentDigest: content.digest(),
      stats,
      warnings: plan.warnings,
    },
  };
}
