// Counting failures in a sliding window, per client address and overall, so that
// guessing restore codes is slow while an honest technician's typo costs nothing.

export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  private global: number[] = [];

  constructor(
    private readonly now: () => number,
    private readonly perKey: number,
    private readonly overall: number,
    private readonly windowMs: number,
  ) {}

  private recent(times: number[]): number[] {
    const since = this.now() - this.windowMs;
    return times.filter((time) => time > since);
  }

  /** Milliseconds until `key` may try again, or 0 when it may try now. */
  retryAfter(key: string): number {
    const mine = this.recent(this.failures.get(key) ?? []);
    this.failures.set(key, mine);
    this.global = this.recent(this.global);
    const blocking = mine.length >= this.perKey ? mine : this.global.length >= this.overall ? this.global : null;
    if (!blocking) return 0;
    return Math.max(1, blocking[0]! + this.windowMs - this.now());
  }

  fail(key: string): void {
    const time = this.now();
    this.failures.set(key, [...(this.failures.get(key) ?? []), time]);
    this.global.push(time);
  }
}
