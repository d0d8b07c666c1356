// Upload slots: how many object uploads the server reads and checks at once. Each
// machine (or admin token) waits in a queue of its own, the queues are served in turn,
// and no machine holds more than its share, so one client cannot starve the others.
import type { RequestHandler, Response } from 'express';
import { principalOf } from './http.js';

type Start = (release: () => void) => void;

interface Waiter {
  key: string;
  start: Start;
}

export class UploadSlots {
  private active = 0;
  private readonly held = new Map<string, number>();
  /** Map order is the round-robin order: a key served goes to the back. */
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(
    readonly slots: number,
    readonly perKey: number,
  ) {}

  /**
   * Call `start` once `key` may have a slot, with the function that gives it back.
   * Returns a function that withdraws the request if it is still waiting.
   */
  enter(key: string, start: Start): () => void {
    const waiter: Waiter = { key, start };
    if (!this.waiting.has(key) && this.mayStart(key)) {
      this.begin(waiter);
      return () => {};
    }
    this.waiting.set(key, [...(this.waiting.get(key) ?? []), waiter]);
    return () => this.withdraw(waiter);
  }

  /** Slots in use, by key (for tests and metrics). */
  usage(): { active: number; waiting: number; byKey: Record<string, number> } {
    let waiting = 0;
    for (const queue of this.waiting.values()) waiting += queue.length;
    return { active: this.active, waiting, byKey: Object.fromEntries(this.held) };
  }

  private mayStart(key: string): boolean {
    return this.active < this.slots && (this.held.get(key) ?? 0) < this.perKey;
  }

  private begin(waiter: Waiter): void {
    this.active++;
    this.held.set(waiter.key, (this.held.get(waiter.key) ?? 0) + 1);
    let released = false;
    waiter.start(() => {
      if (released) return;
      released = true;
      this.active--;
      const left = this.held.get(waiter.key)! - 1;
      if (left === 0) this.held.delete(waiter.key);
      else this.held.set(waiter.key, left);
      this.dispatch();
    });
  }

  private withdraw(waiter: Waiter): void {
    const queue = this.waiting.get(waiter.key);
    if (!queue) return;
    const rest = queue.filter((entry) => entry !== waiter);
    if (rest.length) this.waiting.set(waiter.key, rest);
    else this.waiting.delete(waiter.key);
  }

  /** Give free slots to waiting keys in turn, skipping keys at their share. */
  private dispatch(): void {
    for (let progress = true; progress && this.active < this.slots; ) {
      progress = false;
      for (const [key, queue] of this.waiting) {
        if (!this.mayStart(key)) continue;
        const waiter = queue.shift()!;
        this.waiting.delete(key);
        if (queue.length) this.waiting.set(key, queue);
        this.begin(waiter);
        progress = true;
        break;
      }
    }
  }
}

/** Who an upload counts against: its machine, or the token for an admin. */
export function uploaderOf(response: Response): string {
  const principal = principalOf(response);
  return principal.machine ? `machine:${principal.machine}` : `token:${principal.tokenId}`;
}

/** Middleware: wait for a slot, hold it until the response ends or the connection closes. */
export function uploadSlot(slots: UploadSlots): RequestHandler {
  return (_request, response, next) => {
    let started = false;
    const withdraw = slots.enter(uploaderOf(response), (release) => {
      started = true;
      if (response.destroyed || response.writableFinished) {
        release();
        return;
      }
      response.once('finish', release);
      response.once('close', release);
      next();
    });
    if (!started) response.once('close', withdraw);
  };
}
