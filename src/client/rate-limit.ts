// Upload bandwidth as a decorator of any RepositorySink: chunk and index uploads wait
// on a token bucket, every other call passes straight through. Capture never knows it is
// throttled, and the same wrapper serves a server's client and a repository directory.
import { setTimeout as sleep } from 'node:timers/promises';
import type { RepositorySink } from './ports.js';

/** Bytes per second for the bucket, and how much may go at once after a pause. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly bytesPerSecond: number,
    /** A quarter of a second at the rate by default: short bursts, no long stall. */
    readonly burstBytes = Math.ceil(bytesPerSecond / 4),
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burstBytes;
    this.last = now();
  }

  /**
   * Wait until `bytes` may go. A request larger than what the bucket holds runs it into
   * debt, and callers that arrive meanwhile wait behind that debt: over any stretch of
   * time no more than the rate (plus one burst) goes out, however many upload at once.
   */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = this.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
    this.tokens -= bytes;
    if (this.tokens < 0) await sleep((-this.tokens / this.bytesPerSecond) * 1000, undefined, { signal });
  }
}

function byteLength(frame: Buffer | Buffer[]): number {
  return Array.isArray(frame) ? frame.reduce((sum, part) => sum + part.length, 0) : frame.length;
}

/**
 * `sink` with its uploads held to the bucket's rate. Every other member of T (a capture
 * also reads the base image through it) is the sink's own, which a Proxy keeps without
 * restating the interface.
 */
export function limitUploadRate<T extends RepositorySink>(sink: T, bucket: TokenBucket, signal?: AbortSignal): T {
  const putChunk: RepositorySink['putChunk'] = async (id, digest, frame, length) => {
    await bucket.take(length ?? byteLength(frame), signal);
    return sink.putChunk(id, digest, frame, length);
  };
  const putIndex: RepositorySink['putIndex'] = async (id, digest, frame) => {
    await bucket.take(frame.length, signal);
    return sink.putIndex(id, digest, frame);
  };
  return new Proxy(sink, {
    get(target, property) {
      if (property === 'putChunk') return putChunk;
      if (property === 'putIndex') return putIndex;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
