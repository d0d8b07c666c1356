// Benchmark that chooses the chunk size: the disk benchmark's full image and its
// incremental after the scripted day, at 256 KiB to 4 MiB chunks. A smaller chunk sends
// less after a day of scattered writes but stores more objects and a larger index.
import fs from 'node:fs/promises';
import path from 'node:path';
import { chunkSizeFor } from '../src/format/chunk.js';
import { BENCH_DISK_SIZE, benchDisk } from './bench-disk.js';
import { type B365Row, type BenchContext, type DiskArtifacts, b365Image, startServerIn } from './disk.js';
import { renderTable } from './measure.js';
import { type ObjectStats, imageChunkSizes, imageIndexes, storeObjects } from './store-stats.js';

const KiB = 1024;
const SIZES = [256 * KiB, 512 * KiB, 1024 * KiB, 2048 * KiB, 4096 * KiB];

export interface ChunkSizeResult {
  chunkSize: number;
  full: B365Row;
  incremental: B365Row;
  objects: ObjectStats;
  index: ObjectStats;
  reused: boolean;
}

const sizeName = (bytes: number) => (bytes >= 1 << 20 ? `${bytes >> 20}M` : `${bytes >> 10}K`);
const mib = (bytes: number) => (bytes / (1 << 20)).toFixed(1);

export async function benchChunkSize(
  context: BenchContext,
  fromDiskSection?: DiskArtifacts,
): Promise<{ results: ChunkSizeResult[] }> {
  const { scope, work } = context;
  const disk = await benchDisk(context.log);
  const results: ChunkSizeResult[] = [];
  for (const chunkSize of SIZES) {
    // The disk benchmark already imaged the same disks at the default size in this run.
    const earlier = fromDiskSection?.b365.rows;
    const repo = fromDiskSection?.b365.server.repo;
    if (earlier && repo && [...(await imageChunkSizes(repo, earlier.latestImage))].join() === String(chunkSize)) {
      results.push({
        chunkSize,
        full: earlier.full,
        incremental: earlier.incremental,
        objects: await storeObjects(repo),
        index: await imageIndexes(repo, earlier.latestImage),
        reused: true,
      });
      continue;
    }
    const directory = path.join(work, `chunk-size-${sizeName(chunkSize)}`);
    const server = await startServerIn(scope, directory);
    const machine = 'bench-chunks';
    const option = `--chunk-size ${sizeName(chunkSize)}`;
    // Run once each: the sizes are compared with each other, not with another tool.
    const full = await b365Image(`full, ${sizeName(chunkSize)}`, server, disk.before, machine, option);
    const incremental = await b365Image(`incremental, ${sizeName(chunkSize)}`, server, disk.after, machine, option);
    results.push({
      chunkSize,
      full,
      incremental,
      objects: await storeObjects(server.repo),
      index: await imageIndexes(server.repo, incremental.report.image),
      reused: false,
    });
    await server.stop();
    await fs.rm(directory, { recursive: true, force: true });
  }

  const header = [
    'chunk',
    'incr. sent MiB',
    'incr. chunks',
    'changed raw MiB',
    'objects stored',
    'index KiB/image',
    'index per TiB',
    'full wall s',
    'incr. wall s',
    'full server CPU s',
    'incr. CPU s (client+server)',
    'load',
  ];
  const lines = results.map((result) => [
    `${sizeName(result.chunkSize)}${result.reused ? '*' : ''}`,
    mib(result.incremental.report.bytesUploaded),
    String(result.incremental.report.chunksUploaded),
    mib(result.incremental.report.chunksUploaded * result.chunkSize),
    String(result.objects.objects),
    (result.index.rawBytes / KiB).toFixed(0),
    `${mib((32 * 2 ** 40) / result.chunkSize)} MiB`,
    result.full.wallSeconds.toFixed(1),
    result.incremental.wallSeconds.toFixed(1),
    result.full.serverCpuSeconds.toFixed(1),
    (result.incremental.cpuSeconds + result.incremental.serverCpuSeconds).toFixed(1),
    `${(result.full.load ?? 0).toFixed(1)}/${(result.incremental.load ?? 0).toFixed(1)}`,
  ]);
  process.stdout.write(
    [
      '',
      `## Chunk size: full + incremental of the 4 GiB disk at each size (default: auto, ${sizeName(chunkSizeFor(BENCH_DISK_SIZE))} for a disk this size)`,
      renderTable(header, lines),
      '- incr. sent: LZ4-compressed bytes uploaded by the incremental; changed raw: chunks it sent times the chunk size',
      '- objects stored: chunks and indexes in the store after both images; index per TiB: 32-byte digests for 1 TiB of volume',
      ...(results.some((result) => result.reused) ? ['- *: measured by the disk benchmark earlier in this run'] : []),
      '',
    ].join('\n'),
  );
  return { results };
}
