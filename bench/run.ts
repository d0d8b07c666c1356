// `make bench`: every benchmark in one run, printed as tables with ratios against the
// field's tools measured on the same data. Pick sections with B365_BENCH=raw,disk,...
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { benchRaw } from './raw.js';

const cleanups: (() => unknown)[] = [];
const scope = { teardown: (fn: () => unknown) => cleanups.push(fn) };
const sections: Record<string, (work: string) => Promise<unknown>> = {
  raw: (work) => benchRaw(scope, work),
};

async function main(): Promise<void> {
  const wanted = (process.env.B365_BENCH ?? Object.keys(sections).join(',')).split(',');
  const work = await fs.mkdtemp(path.join(process.env.B365_BENCH_DIR ?? os.tmpdir(), 'b365-bench-'));
  cleanups.push(() => fs.rm(work, { recursive: true, force: true }));
  process.stdout.write(`# Backup365 benchmarks (${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version})\n`);
  for (const name of wanted) {
    const section = sections[name.trim()];
    if (!section) throw new Error(`unknown benchmark section ${name}; known: ${Object.keys(sections).join(', ')}`);
    await section(work);
  }
}

main()
  .catch((error: Error) => {
    process.stderr.write(`benchmark failed: ${error.stack ?? error.message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  });
