// `make bench`: every benchmark in one run, printed as tables with ratios against the
// field's tools measured on the same data. Pick sections with B365_BENCH=raw,disk,...
// The machine may be shared: every step reports the load average it ran under, and a
// step that ran while other processes were busy is run again (keeping the fastest)
// when the run can afford it within B365_BENCH_BUDGET seconds (default about 32 minutes).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { benchChunkSize } from './chunk-size.js';
import { benchCommitCheck } from './commit-check.js';
import { benchFiles } from './files.js';
import { benchLoad } from './load.js';
import { type BenchContext, type DiskArtifacts, benchDiskImaging } from './disk.js';
import { type Measurement, type RepeatPolicy, loadAverage, otherLoad } from './measure.js';
import { benchRaw } from './raw.js';
import { benchRestore } from './restore.js';

const cleanups: (() => unknown)[] = [];
const scope = { teardown: (fn: () => unknown) => cleanups.push(fn) };
const started = Date.now();
const budgetSeconds = Number(process.env.B365_BENCH_BUDGET ?? 1900);
/** Others keeping at least one of the cores busy on average make a step worth repeating. */
const busyLoad = Number(process.env.B365_BENCH_BUSY_LOAD ?? 1);
/** Seconds each section takes without repeats, measured here at a load average near 9. */
const NOMINAL_SECONDS: Record<string, number> = {
  raw: 150,
  disk: 280,
  restore: 110,
  files: 120,
  'chunk-size': 520,
  'commit-check': 60,
  load: 660,
};

/**
 * Whether a repeat of a given length still fits the budget: what is left of the run is
 * projected from the nominal section lengths, scaled by how fast the finished sections
 * went. Competitors' steps run before ours, so when the budget runs short it is our
 * step that loses its second chance.
 */
class RunBudget {
  private readonly finished: { nominal: number; actual: number }[] = [];
  private current = { name: '', started: Date.now() };

  constructor(private readonly sectionsToRun: string[]) {}

  startSection(name: string): void {
    this.current = { name, started: Date.now() };
  }

  endSection(): void {
    this.finished.push({
      nominal: NOMINAL_SECONDS[this.current.name] ?? 0,
      actual: (Date.now() - this.current.started) / 1000,
    });
  }

  private speed(): number {
    const nominal = this.finished.reduce((sum, section) => sum + section.nominal, 0);
    const actual = this.finished.reduce((sum, section) => sum + section.actual, 0);
    return nominal > 0 ? Math.min(3, Math.max(0.5, actual / nominal)) : 1;
  }

  allows(repeatSeconds: number): boolean {
    const position = this.sectionsToRun.indexOf(this.current.name);
    const later = this.sectionsToRun.slice(position + 1).reduce((sum, name) => sum + (NOMINAL_SECONDS[name] ?? 0), 0);
    const inCurrent = (Date.now() - this.current.started) / 1000;
    const restOfCurrent = Math.max(0, (NOMINAL_SECONDS[this.current.name] ?? 0) * this.speed() - inCurrent);
    const elapsed = (Date.now() - started) / 1000;
    return elapsed + repeatSeconds + restOfCurrent + later * this.speed() <= budgetSeconds;
  }
}

function repeatPolicy(budget: RunBudget): RepeatPolicy {
  return {
    wantsRepeat: (row: Measurement, ownCpuSeconds: number) =>
      otherLoad(row, ownCpuSeconds) > busyLoad && budget.allows(row.wallSeconds),
  };
}
const log = (line: string) => process.stderr.write(`${line}\n`);
let diskArtifacts: DiskArtifacts | undefined;

const sections: Record<string, (context: BenchContext) => Promise<unknown>> = {
  raw: (context) => benchRaw(context.scope, context.work),
  disk: async (context) => {
    diskArtifacts = (await benchDiskImaging(context)).artifacts;
  },
  restore: (context) => benchRestore(context, diskArtifacts),
  files: (context) => benchFiles(context, diskArtifacts),
  'chunk-size': (context) => benchChunkSize(context, diskArtifacts),
  'commit-check': (context) => benchCommitCheck(context),
  load: (context) => benchLoad(context),
};

async function main(): Promise<void> {
  const wanted = (process.env.B365_BENCH ?? Object.keys(sections).join(',')).split(',').map((name) => name.trim());
  for (const name of wanted)
    if (!sections[name])
      throw new Error(`unknown benchmark section ${name}; known: ${Object.keys(sections).join(', ')}`);
  const work = await fs.mkdtemp(path.join(process.env.B365_BENCH_DIR ?? os.tmpdir(), 'b365-bench-'));
  cleanups.push(() => fs.rm(work, { recursive: true, force: true }));
  const load = (await fs.readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  process.stdout.write(
    `# Backup365 benchmarks (${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version})\n`,
  );
  process.stdout.write(`load average at start: ${load}; busy steps repeated while the run fits ${budgetSeconds} s\n`);
  const budget = new RunBudget(wanted);
  for (const name of wanted) {
    budget.startSection(name);
    await sections[name]!({ scope, work, policy: repeatPolicy(budget), log });
    budget.endSection();
    log(
      `section ${name} done ${((Date.now() - started) / 1000).toFixed(0)} s into the run; load average now ${(await loadAverage()).toFixed(1)}`,
    );
  }
  process.stdout.write(
    `\nwhole run: ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end: ${(await fs.readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}\n`,
  );
}

main()
  .catch((error: Error) => {
    process.stderr.write(`benchmark failed: ${error.stack ?? error.message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  });
