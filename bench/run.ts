// `make bench`: every benchmark in one run, printed as tables with ratios against the
// field's tools measured on the same data. Pick sections with B365_BENCH=raw,disk,...
// The machine may be shared: every step reports the load average it ran under, and a
// step that ran while other processes were busy is run again (keeping the fastest) in
// the sections that start within B365_BENCH_REPEAT_WINDOW seconds, so that the whole
// run stays near 20 minutes; a section repeats all its comparisons or none.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { benchChunkSize } from './chunk-size.js';
import { type BenchContext, type DiskArtifacts, benchDiskImaging } from './disk.js';
import { type Measurement, type RepeatPolicy, loadAverage, otherLoad } from './measure.js';
import { benchRaw } from './raw.js';
import { benchRestore } from './restore.js';

const cleanups: (() => unknown)[] = [];
const scope = { teardown: (fn: () => unknown) => cleanups.push(fn) };
const started = Date.now();
const repeatWindowSeconds = Number(process.env.B365_BENCH_REPEAT_WINDOW ?? 300);
/** Others keeping at least one of the cores busy on average make a step worth repeating. */
const busyLoad = Number(process.env.B365_BENCH_BUSY_LOAD ?? 1);

function repeatPolicy(repeats: boolean): RepeatPolicy {
  return { wantsRepeat: (row: Measurement, ownCpuSeconds: number) => repeats && otherLoad(row, ownCpuSeconds) > busyLoad };
}
const log = (line: string) => process.stderr.write(`${line}\n`);
let diskArtifacts: DiskArtifacts | undefined;

const sections: Record<string, (context: BenchContext) => Promise<unknown>> = {
  raw: (context) => benchRaw(context.scope, context.work),
  disk: async (context) => {
    diskArtifacts = (await benchDiskImaging(context)).artifacts;
  },
  restore: (context) => benchRestore(context, diskArtifacts),
  'chunk-size': (context) => benchChunkSize(context, diskArtifacts),
};

async function main(): Promise<void> {
  const wanted = (process.env.B365_BENCH ?? Object.keys(sections).join(',')).split(',').map((name) => name.trim());
  for (const name of wanted) if (!sections[name]) throw new Error(`unknown benchmark section ${name}; known: ${Object.keys(sections).join(', ')}`);
  const work = await fs.mkdtemp(path.join(process.env.B365_BENCH_DIR ?? os.tmpdir(), 'b365-bench-'));
  cleanups.push(() => fs.rm(work, { recursive: true, force: true }));
  const load = (await fs.readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  process.stdout.write(`# Backup365 benchmarks (${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version})\n`);
  process.stdout.write(`load average at start: ${load}; repeats of busy steps for the first ${repeatWindowSeconds} s\n`);
  for (const name of wanted) {
    const sectionStarted = Date.now();
    const repeats = (sectionStarted - started) / 1000 < repeatWindowSeconds;
    await sections[name]!({ scope, work, policy: repeatPolicy(repeats), log });
    log(`section ${name} took ${((Date.now() - sectionStarted) / 1000).toFixed(0)} s${repeats ? ' (busy steps repeated)' : ''}; load average now ${(await loadAverage()).toFixed(1)}`);
  }
  process.stdout.write(`\nwhole run: ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end: ${(await fs.readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}\n`);
}

main()
  .catch((error: Error) => {
    process.stderr.write(`benchmark failed: ${error.stack ?? error.message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  });
