// Explicit garbage collection for the capture pipeline. Compression output is native
// memory that V8 frees only when it collects, and it collects late: without a nudge a
// client holds hundreds of MiB of dead frames. Frames die young, so a cheap young-
// generation collection every few MiB frees most of them; a full one now and then
// frees those that lived long enough to be promoted.
import v8 from 'node:v8';
import vm from 'node:vm';

type Collect = (options?: { type: 'minor' | 'major' }) => void;
let collect: Collect | null | undefined;

export function collectGarbage(type: 'minor' | 'major' = 'major'): void {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      collect = vm.runInNewContext('gc') as Collect;
    } catch {
      collect = null;
    }
  }
  collect?.({ type });
}

/** A young-generation collection every `bytes` reported through add(), a full one every `fullEvery` of those. */
export class GarbageBudget {
  private since = 0;
  private minors = 0;
  constructor(
    private readonly bytes: number,
    private readonly fullEvery = 8,
  ) {}
  add(bytes: number): void {
    this.since += bytes;
    if (this.since < this.bytes) return;
    this.since = 0;
    this.minors = (this.minors + 1) % this.fullEvery;
    collectGarbage(this.minors === 0 ? 'major' : 'minor');
  }
}
