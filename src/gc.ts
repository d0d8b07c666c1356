// Explicit garbage collection for the capture pipeline. Compression output is native
// memory that V8 frees only when it collects, and it collects late: without a nudge a
// client holds hundreds of MiB of dead frames. Collecting every few dozen MiB keeps
// peak memory flat for a negligible cost.
import v8 from 'node:v8';
import vm from 'node:vm';

let collect: (() => void) | null | undefined;

export function collectGarbage(): void {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      collect = vm.runInNewContext('gc') as () => void;
    } catch {
      collect = null;
    }
  }
  collect?.();
}

/** Calls collectGarbage() once every `bytes` reported through add(). */
export class GarbageBudget {
  private since = 0;
  constructor(private readonly bytes: number) {}
  add(bytes: number): void {
    this.since += bytes;
    if (this.since >= this.bytes) {
      this.since = 0;
      collectGarbage();
    }
  }
}
