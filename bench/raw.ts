// Benchmark of the repository core: raw image of a 2 GiB file of realistic mixed
// content (real system files, generated text and random data, zeros) through a local
// server, next to `lz4 -1` and `b3sum` on the same file in the same run. The file is
// made once and kept under var/cache/bench/.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { writeMixedFile } from '../test/helpers/content.js';
import { benchCacheRoot } from './bench-disk.js';
import { startServer } from '../test/helpers/server.js';
import { CLI_MAIN } from '../test/helpers/cli.js';
import { type Measurement, formatTable, measure, processUsage } from './measure.js';

interface Scope {
  teardown(fn: () => unknown): void;
}

const GiB = 1 << 30;

/** Bump when makeSource changes. */
const RAW_SOURCE_VERSION = 'raw-2g-v1';

/** 2 GiB: 1.25 GiB of real files from /usr (a tar stream), then generated mixed content. */
async function makeSource(file: string): Promise<void> {
  await execa('sh', ['-c', `tar -cf - /usr/lib /usr/share /usr/bin 2>/dev/null | head -c ${1.25 * GiB} > ${file}`]);
  const tail = `${file}.tail`;
  await writeMixedFile(tail, 0.75 * GiB, 99);
  await execa('sh', ['-c', `cat ${tail} >> ${file} && rm ${tail}`]);
  const size = (await fs.stat(file)).size;
  if (size < 2 * GiB - (1 << 20)) throw new Error(`source is only ${size} bytes`);
}

/** The cached source file, made first when the cache lacks it. */
async function cachedSource(): Promise<string> {
  const directory = path.join(benchCacheRoot(), RAW_SOURCE_VERSION);
  const source = path.join(directory, 'source.img');
  if (
    await fs.access(source).then(
      () => true,
      () => false,
    )
  )
    return source;
  await fs.mkdir(directory, { recursive: true });
  const partial = `${source}.partial-${process.pid}`;
  try {
    await makeSource(partial);
    await fs.rename(partial, source);
  } finally {
    await fs.rm(partial, { force: true });
    await fs.rm(`${partial}.tail`, { force: true });
  }
  return source;
}

export async function benchRaw(scope: Scope, work: string): Promise<{ rows: Measurement[]; checks: string[] }> {
  const source = await cachedSource();
  const bytes = (await fs.stat(source)).size;
  await execa('sh', ['-c', `cat ${source} > /dev/null`]);

  const rows: Measurement[] = [];
  rows.push({ ...(await measure('b3sum (1 thread)', `b3sum --num-threads 1 ${source}`)), bytes });
  rows.push({ ...(await measure('lz4 -1', `lz4 -1 -c ${source} > /dev/null`)), bytes });

  const server = await startServer(scope, { repo: path.join(work, 'raw-repo') });
  const env = { ...server.env, B365_LOG_LEVEL: 'warn' };
  const image = await measure(
    'b365 image (client)',
    `${process.execPath} ${CLI_MAIN} image ${source} --machine bench-raw --json`,
    { env },
  );
  const report = JSON.parse(image.stdout);
  const serverUsage = await processUsage(server.process.pid!);
  rows.push({ ...image, bytes, note: `uploaded ${(report.bytesUploaded / 1e6).toFixed(0)} MB` });
  rows.push({
    label: 'b365 server (whole run)',
    wallSeconds: image.wallSeconds,
    cpuSeconds: serverUsage.cpuSeconds,
    peakRssMiB: serverUsage.peakRssMiB,
    note: 'CPU and RSS of the server process',
  });
  const again = await measure(
    'b365 image, unchanged',
    `${process.execPath} ${CLI_MAIN} image ${source} --machine bench-raw --json`,
    { env },
  );
  rows.push({ ...again, bytes, note: `uploaded ${JSON.parse(again.stdout).bytesUploaded} bytes` });
  const restoreTarget = path.join(work, 'raw-restored.img');
  rows.push({
    ...(await measure(
      'b365 restore',
      `${process.execPath} ${CLI_MAIN} restore bench-raw@latest --to ${restoreTarget} --json`,
      { env },
    )),
    bytes,
  });
  await fs.rm(restoreTarget, { force: true });
  await server.stop();

  const lz4 = rows.find((row) => row.label === 'lz4 -1')!;
  const b3 = rows.find((row) => row.label === 'b3sum (1 thread)')!;
  const checks = [
    `b365 image wall / lz4 -1 wall: ${(image.wallSeconds / lz4.wallSeconds).toFixed(2)}x; / b3sum wall: ${(image.wallSeconds / b3.wallSeconds).toFixed(2)}x`,
    `client throughput ${(bytes / 1e6 / image.wallSeconds).toFixed(0)} MB/s, client CPU ${image.cpuSeconds.toFixed(1)} s, server CPU ${serverUsage.cpuSeconds.toFixed(1)} s`,
    `client peak RSS ${image.peakRssMiB.toFixed(0)} MiB (target < 150): ${image.peakRssMiB < 150 ? 'met' : 'MISSED'}`,
    `server peak RSS ${serverUsage.peakRssMiB.toFixed(0)} MiB (target < 150): ${serverUsage.peakRssMiB < 150 ? 'met' : 'MISSED'}`,
  ];
  process.stdout.write(
    `\n## Raw image of a 2 GiB file (repository core)\n${formatTable(rows)}\n${checks.map((line) => `- ${line}`).join('\n')}\n`,
  );
  return { rows, checks };
}
