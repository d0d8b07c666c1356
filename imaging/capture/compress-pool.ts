// Compression on worker threads, so hashing and I/O on the main thread overlap with
// LZ4 on the other cores. Chunks travel as slots of a SharedArrayBuffer: no copies in,
// the compressed frame is moved back.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { frameParts } from '../../src/format/lz4-frame.js';
import { GarbageBudget } from '../../src/core/heap-budget.js';

/** An LZ4 frame kept as separate buffers; sent as one body without joining them. */
export interface Frame {
  parts: Buffer[];
  length: number;
}

export function frameOf(contentSize: number, blocks: Buffer[]): Frame {
  const parts = frameParts(contentSize, blocks);
  return { parts, length: parts.reduce((sum, part) => sum + part.length, 0) };
}

interface Pending {
  length: number;
  resolve(frame: Frame): void;
  reject(error: Error): void;
}

export class CompressPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; shared: SharedArrayBuffer; offset: number; length: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Frames arrive here and die a little later, after their upload or as duplicates. */
  private readonly garbage = new GarbageBudget(4 << 20);

  /** One core stays with the main thread (reading, hashing, HTTP); compression gets the rest. */
  constructor(threads = Math.max(1, Math.min(os.availableParallelism() - 1, 4))) {
    for (let count = 0; count < threads; count++) {
      const worker = new Worker(new URL('./compress-worker.js', import.meta.url));
      worker.on('message', (message: { id: number; blocks?: Uint8Array[]; error?: string }) => {
        const waiting = this.pending.get(message.id);
        this.pending.delete(message.id);
        this.idle.push(worker);
        this.dispatch();
        if (!waiting) return;
        this.garbage.add(waiting.length);
        if (message.error !== undefined || !message.blocks)
          waiting.reject(new Error(`compression failed: ${message.error}`));
        else
          waiting.resolve(
            frameOf(
              waiting.length,
              message.blocks.map((block) => Buffer.from(block.buffer, block.byteOffset, block.byteLength)),
            ),
          );
      });
      worker.on('error', (error) => {
        for (const waiting of this.pending.values()) waiting.reject(error);
        this.pending.clear();
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  get threads(): number {
    return this.workers.length;
  }

  /** Compress `length` bytes at `offset` of `shared`; the slot must not change until this settles. */
  compress(shared: SharedArrayBuffer, offset: number, length: number): Promise<Frame> {
    const id = this.nextId++;
    const promise = new Promise<Frame>((resolve, reject) => this.pending.set(id, { length, resolve, reject }));
    this.queue.push({ id, shared, offset, length });
    this.dispatch();
    return promise;
  }

  private dispatch(): void {
    while (this.idle.length && this.queue.length) this.idle.pop()!.postMessage(this.queue.shift()!);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
