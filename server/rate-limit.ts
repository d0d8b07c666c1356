// Counting failures in a sliding window per client address, so that guessing restore
// codes is slow for every address while nobody else's failures ever cost an honest
// technician anything. docs/security.md has the arithmetic behind the numbers.

/**
 * Addresses remembered at most. Past this the longest-remembered is forgotten: a flood
 * from that many addresses then guesses no faster than the server answers, which the
 * arithmetic in docs/security.md still shows to be hopeless; memory stays bounded.
 */
const MAX_KEYS = 100_000;

export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  private lastSweep = 0;

  constructor(
    private readonly now: () => number,
    private readonly perKey: number,
    private readonly windowMs: number,
    private readonly maxKeys = MAX_KEYS,
  ) {}

  private recent(times: number[]): number[] {
    const since = this.now() - this.windowMs;
    return times.filter((time) => time > since);
  }

  /** Milliseconds until `key` may try again, or 0 when it may try now. */
  retryAfter(key: string): number {
    const mine = this.recent(this.failures.get(key) ?? []);
    if (mine.length === 0) this.failures.delete(key);
    else this.failures.set(key, mine);
    if (mine.length < this.perKey) return 0;
    return Math.max(1, mine[mine.length - this.perKey]! + this.windowMs - this.now());
  }

  fail(key: string): void {
    const times = [...this.recent(this.failures.get(key) ?? []), this.now()];
    this.failures.delete(key);
    this.failures.set(key, times);
    this.sweep();
    if (this.failures.size > this.maxKeys) this.failures.delete(this.failures.keys().next().value!);
  }

  /** Forget addresses whose failures are all older than the window, once per window. */
  private sweep(): void {
    const now = this.now();
    if (now - this.lastSweep < this.windowMs) return;
    this.lastSweep = now;
    for (const [key, times] of this.failures) {
      if (this.recent(times).length === 0) this.failures.delete(key);
    }
  }

  /** Addresses currently remembered (for tests and metrics). */
  get size(): number {
    return this.failures.size;
  }
}
