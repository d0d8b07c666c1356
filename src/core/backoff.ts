// Waiting between attempts at something that fails for a while (a server that is down):
// delays that double from an initial one up to a cap, optionally spread by jitter so that
// many clients do not retry in step, and a sleep that a stop cuts short.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from './clock.js';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Each delay is scaled by a random factor in [1 - jitter, 1 + jitter] (default 0: none). */
  jitter?: number;
}

/** The delay before the next attempt after `failures` failures in a row (the first waits `initialMs`). */
export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  // The exponent is bounded so that a long outage never overflows to Infinity.
  const exponent = Math.min(Math.max(0, failures - 1), 52);
  const capped = Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
  const jitter = policy.jitter ?? 0;
  return jitter ? capped * (1 - jitter + random() * 2 * jitter) : capped;
}

/**
 * A run of failures and when the next attempt is due. The policy is read at each failure,
 * so settings that change (the agent's come from the server) apply from the next one.
 */
export class Backoff {
  private failureCount = 0;
  private nextAttemptAt = 0;

  constructor(private readonly policy: () => BackoffPolicy) {}

  get failures(): number {
    return this.failureCount;
  }

  /** When the next attempt may start (0: at once). */
  get retryAt(): number {
    return this.nextAttemptAt;
  }

  /** Whether an attempt may start at `now`. */
  due(now: number): boolean {
    return now >= this.nextAttemptAt;
  }

  /** Count a failure at `now`; returns when the next attempt is due. */
  fail(now: number): number {
    this.failureCount++;
    this.nextAttemptAt = now + backoffDelay(this.policy(), this.failureCount);
    return this.nextAttemptAt;
  }

  /** A success: the next failure waits the initial delay again. */
  reset(): void {
    this.failureCount = 0;
    this.nextAttemptAt = 0;
  }

  /** Allow an attempt at once, keeping the count, so that a new failure still waits longer. */
  retryNow(): void {
    this.nextAttemptAt = 0;
  }
}

/** Sleep `ms`, or less when `signal` aborts; true when the whole time passed. */
export async function abortableSleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return false;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/**
 * Wait until `clock` reads `time`, looking at it every `stepMs` at most: a clock that tests
 * move or that jumps is followed, which one long timer would not do. False when aborted.
 */
export async function sleepUntil(
  clock: Clock,
  time: number,
  options: { stepMs: number; signal?: AbortSignal },
): Promise<boolean> {
  while (clock.now() < time) {
    const step = Math.min(options.stepMs, Math.max(10, time - clock.now()));
    if (!(await abortableSleep(step, options.signal))) return false;
  }
  return !options.signal?.aborted;
}
