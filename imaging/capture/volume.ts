// Capture of one volume: read → zero unused → hash → skip what the base image or this
// run already has → compress (on workers) → offer to the uploader. Reads are sequential
// so the content digest of the whole volume is computed on the way.
import type { FileHandle } from 'node:fs/promises';
import { isAllZero } from '../../src/format/chunk.js';
import { ContentHasher, digestOf } from '../../src/format/digest.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import type { Volume, VolumeStats } from '../../src/format/manifest.js';
import { readFully } from '../device.js';
import type { Range, RangeCursor } from '../ranges.js';
import type { CompressPool, Frame } from './compress-pool.js';
import type { DigestKeySet } from './digest-set.js';
import type { VolumePlan } from './plan.js';
import type { Uploader } from './uploader.js';

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

export function captureVolume(context: CaptureContext, plan: VolumePlan): Promise<CapturedVolume> {
  return new VolumeCapture(context, plan).run();
}

/** One volume's capture in progress: its index, content digest and stats as chunks pass. */
class VolumeCapture {
  private readonly index: FixedIndex;
  private readonly content = new ContentHasher();
  private readonly stats: VolumeStats;
  private readonly cursor: RangeCursor;
  /** Compressions still running; the slots they hold come back when they end. */
  private readonly compressions: Promise<unknown>[] = [];
  private readonly where: string;

  constructor(
    private readonly context: CaptureContext,
    private readonly plan: VolumePlan,
  ) {
    this.index = new FixedIndex(plan.chunkSize, plan.size);
    this.cursor = plan.readable.cursor();
    this.where = `${context.source} volume ${plan.id}`;
    this.stats = {
      chunks: this.index.chunkCount,
      holes: 0,
      bytesRead: 0,
      bytesUsed: plan.readable.totalBytes,
      chunksUploaded: 0,
      chunksReused: 0,
      bytesUploaded: 0,
    };
  }

  async run(): Promise<CapturedVolume> {
    for (let position = 0; position < this.index.chunkCount; position++) {
      if (this.context.signal?.aborted) throw this.context.signal.reason;
      await this.chunk(position);
    }
    await Promise.all(this.compressions);
    return { index: this.index, volume: this.volume() };
  }

  /** Read one chunk; a hole or a chunk already held goes no further. */
  private async chunk(position: number): Promise<void> {
    const chunkStart = position * this.plan.chunkSize;
    const length = this.index.chunkLength(position);
    const spans = this.cursor.within(chunkStart, chunkStart + length);
    if (spans.length === 0) {
      this.content.updateZeros(length);
      this.stats.holes++;
      return;
    }
    const { slots } = this.context;
    const slot = await slots.acquire();
    let handedOver = false;
    try {
      const bytes = slots.view(slot, length);
      this.stats.bytesRead += await readChunkInto(this.context.handle, this.plan, spans, chunkStart, bytes, this.where);
      this.content.update(bytes);
      this.context.onProgress(spans.reduce((sum, [start, end]) => sum + (end - start), 0));
      if (isAllZero(bytes)) {
        this.stats.holes++;
        return;
      }
      const digest = digestOf(bytes);
      this.index.set(position, digest);
      const key = digestKey(digest);
      if (this.context.base.has(key) || this.context.seen.has(key)) {
        this.stats.chunksReused++;
        return;
      }
      this.context.seen.add(key);
      const compressed = this.compress(slot, length);
      handedOver = true;
      await this.offer(digest, compressed, length);
    } finally {
      if (!handedOver) slots.release(slot);
    }
  }

  /** Compress the chunk in its slot on a worker; the slot is free again when that ends. */
  private compress(slot: number, length: number): Promise<Frame> {
    const { slots } = this.context;
    const frame = this.context.pool.compress(slots.shared, slot * slots.slotSize, length);
    const compressed = frame.finally(() => slots.release(slot));
    this.compressions.push(
      compressed.then(
        () => undefined,
        () => undefined,
      ),
    );
    return compressed;
  }

  private async offer(digest: string, compressed: Promise<Frame>, length: number): Promise<void> {
    await this.context.uploader.offer(digest, compressed, length, (uploaded, sent) => {
      if (uploaded) {
        this.stats.chunksUploaded++;
        this.stats.bytesUploaded += sent;
      } else {
        this.stats.chunksReused++;
      }
    });
  }

  private volume(): Volume {
    const { plan } = this;
    return {
      id: plan.id,
      kind: plan.kind,
      partitionNumber: plan.partitionNumber,
      offset: plan.offset,
      size: plan.size,
      filesystem: plan.filesystem,
      method: plan.method,
      chunkSize: plan.chunkSize,
      index: this.index.digest(),
      contentDigest: this.content.digest(),
      stats: this.stats,
      warnings: plan.warnings,
    };
  }
}
