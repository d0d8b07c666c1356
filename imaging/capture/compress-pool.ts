// Compression on worker threads, so hashing and I/O on the main thread overlap with
// LZ4 on the other cores. Chunks travel as slots of a SharedArrayBuffer: no copies in,
// the compressed frame is moved back.
import os from 'node:os';
import { Worker } from 'node:worker_threads';

interface Pending {
  resolve(frame: Buffer): void;
  reject(error: Error): void;
}

export class CompressPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; shared: SharedArrayBuffer; offset: number; length: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(threads = Math.max(1, Math.min(os.availableParallelism(), 4))) {
    for (let count = 0; count < threads; count++) {
      const worker = new Worker(new URL('./compress-worker.js', import.meta.url));
      worker.on('message', (message: { id: number; frame?: Uint8Array; error?: string }) => {
        const waiting = this.pending.get(message.id);
        this.pending.delete(message.id);
        this.idle.push(worker);
        this.dispatch();
        if (!waiting) return;
        if (message.error !== undefined || !message.frame) waiting.reject(new Error(`compression failed: ${message.error}`));
        else waiting.resolve(Buffer.from(message.frame.buffer, message.frame.byteOffset, message.frame.byteLength));
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
  compress(shared: SharedArrayBuffer, offset: number, length: number): Promise<Buffer> {
    const id = this.nextId++;
    const promise = new Promise<Buffer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
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
