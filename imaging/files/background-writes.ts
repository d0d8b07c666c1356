// Files written a few at a time, so that their chunk fetches overlap and the waits for
// the repository do not add up. The first failure stops new work and is thrown by the
// next start or by drain; drain returns only when nothing is still being written.

export class BackgroundWrites {
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | null = null;

  constructor(private readonly parallel: number) {}

  /** Waits for a free slot, then starts `work` without waiting for it. */
  async start(work: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.parallel) await Promise.race(this.running);
    this.throwFailure();
    const task: Promise<void> = work()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.running.delete(task));
    this.running.add(task);
  }

  /** Everything started has ended (whether or not it failed). */
  async settle(): Promise<void> {
    await Promise.all(this.running);
  }

  throwFailure(): void {
    if (this.failure) throw this.failure.error;
  }
}
