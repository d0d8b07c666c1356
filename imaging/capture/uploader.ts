// Sends the server only what it lacks: candidate chunks are batched, the server is
// asked which of the batch are missing, and only those are uploaded, several at a
// time. Frames waiting here are bounded in bytes, so memory stays flat.
import type { RepositorySink } from '../../src/client/ports.js';
import type { Frame } from './compress-pool.js';

export interface UploadStats {
  chunksUploaded: number;
  chunksPresent: number;
  bytesUploaded: number;
}

interface Candidate {
  digest: string;
  frame: Promise<Frame>;
  /** Called with true when the chunk was sent, false when the server already had it. */
  settled(uploaded: boolean, bytes: number): void;
}

export interface UploaderOptions {
  batchSize?: number;
  parallelUploads?: number;
  maxPendingBytes?: number;
}

export class Uploader {
  readonly stats: UploadStats = { chunksUploaded: 0, chunksPresent: 0, bytesUploaded: 0 };
  private batch: Candidate[] = [];
  private pendingBytes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly waiters: (() => void)[] = [];
  private failure: Error | null = null;
  private readonly batchSize: number;
  private readonly parallelUploads: number;
  private readonly maxPendingBytes: number;
  private activeUploads = 0;
  private readonly uploadWaiters: (() => void)[] = [];

  constructor(
    private readonly client: RepositorySink,
    private readonly sessionId: string,
    options: UploaderOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 256;
    this.parallelUploads = options.parallelUploads ?? 4;
    this.maxPendingBytes = options.maxPendingBytes ?? 8 << 20;
  }

  /**
   * Offer a chunk. `estimatedBytes` (its uncompressed size) counts against the memory
   * bound until the chunk is sent or dropped; this waits while the bound is reached.
   */
  async offer(
    digest: string,
    frame: Promise<Frame>,
    estimatedBytes: number,
    settled: Candidate['settled'],
  ): Promise<void> {
    this.throwIfFailed();
    while (this.pendingBytes + estimatedBytes > this.maxPendingBytes && this.pendingBytes > 0) {
      // What is waiting must get going, or nothing would ever free the memory.
      this.flush();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.throwIfFailed();
    }
    this.pendingBytes += estimatedBytes;
    frame.catch(() => undefined);
    let done = false;
    this.batch.push({
      digest,
      frame,
      settled: (uploaded, bytes) => {
        if (done) return;
        done = true;
        this.pendingBytes -= estimatedBytes;
        for (const wake of this.waiters.splice(0)) wake();
        settled(uploaded, bytes);
      },
    });
    if (this.batch.length >= this.batchSize) this.flush();
  }

  /** Ask about the current batch now (also called when the batch fills up). */
  flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    const work = this.processBatch(batch).catch((error: Error) => {
      this.failure ??= error;
      for (const candidate of batch) candidate.settled(false, 0);
    });
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  /** Send everything offered so far; throws the first upload failure. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private async processBatch(batch: Candidate[]): Promise<void> {
    const missing = new Set(
      await this.client.missing(
        this.sessionId,
        batch.map((candidate) => candidate.digest),
      ),
    );
    const uploads: Promise<void>[] = [];
    for (const candidate of batch) {
      if (!missing.has(candidate.digest)) {
        this.stats.chunksPresent++;
        candidate.settled(false, 0);
        continue;
      }
      uploads.push(this.upload(candidate));
    }
    await Promise.all(uploads);
  }

  private async upload(candidate: Candidate): Promise<void> {
    while (this.activeUploads >= this.parallelUploads)
      await new Promise<void>((resolve) => this.uploadWaiters.push(resolve));
    this.activeUploads++;
    try {
      if (this.failure) throw this.failure;
      const frame = await candidate.frame;
      await this.client.putChunk(this.sessionId, candidate.digest, frame.parts, frame.length);
      this.stats.chunksUploaded++;
      this.stats.bytesUploaded += frame.length;
      candidate.settled(true, frame.length);
    } finally {
      this.activeUploads--;
      this.uploadWaiters.shift()?.();
    }
  }
}
