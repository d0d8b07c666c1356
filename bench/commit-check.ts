// What checking the store at commit costs: a many-chunk image committed twice through
// the repository core (no HTTP), once by the session that uploaded every chunk (the
// check trusts them: nothing is stat'ed) and once by a second session that only
// references them, as an incremental does (every chunk is stat'ed). The difference is
// the price of never committing an image whose chunk the store has lost.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Principal } from '../server/auth.js';
import { Repository } from '../server/repository.js';
import { absentObjects } from '../server/store/presence.js';
import { chunkKey } from '../server/store/store.js';
import { systemClock } from '../src/core/clock.js';
import { encodeChunk } from '../src/format/chunk.js';
import { digestOf } from '../src/format/digest.js';
import { FixedIndex } from '../src/format/fixed-index.js';
import { encodeFrame } from '../src/format/lz4-frame.js';
import { silentLogger } from '../src/core/log.js';
import { rawDiskManifest } from '../test/helpers/manifest.js';
import type { BenchContext } from './disk.js';
import { renderTable } from './measure.js';

const CHUNK_SIZE = 512 << 10;
const ATTEMPTS = 3;
const ADMIN: Principal = { tokenId: 0, role: 'admin', machine: null };

/** `count` distinct stored chunks (small frames: a stat costs the same for any size), recorded as uploaded in `session`. */
async function storeChunks(repository: Repository, root: string, session: string, count: number): Promise<string[]> {
  const digests: string[] = [];
  const seed = Buffer.alloc(64);
  for (let position = 0; position < count; position++) {
    seed.writeUInt32LE(position, 0);
    const { digest, frame } = encodeChunk(seed);
    const file = path.join(root, chunkKey(digest));
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, frame);
    repository.catalog.recordObject(digest, 'chunk', frame.length, CHUNK_SIZE, session);
    digests.push(digest);
  }
  return digests;
}

async function manifestOf(repository: Repository, session: string, digests: string[]) {
  const index = new FixedIndex(CHUNK_SIZE, CHUNK_SIZE * digests.length);
  for (const [position, digest] of digests.entries()) index.set(position, digest);
  const bytes = index.encode();
  await repository.putObject(ADMIN, session, 'index', digestOf(bytes), encodeFrame(bytes));
  return rawDiskManifest('bench', index, digestOf(bytes));
}

async function timed(step: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await step();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export async function benchCommitCheck(context: BenchContext): Promise<void> {
  const counts = (process.env.B365_BENCH_COMMIT_CHUNKS ?? '20000,100000').split(',').map(Number);
  const lines: string[][] = [];
  for (const count of counts) {
    const directory = path.join(context.work, `commit-check-${count}`);
    const { repository } = await Repository.open(directory, { clock: systemClock, log: silentLogger });
    try {
      const uploader = repository.openSession(ADMIN, { id: randomUUID(), machine: 'bench' }).id;
      context.log(`commit-check: storing ${count} chunks`);
      const digests = await storeChunks(repository, directory, uploader, count);
      const manifest = await manifestOf(repository, uploader, digests);
      const trusted = await timed(() => repository.commit(ADMIN, uploader, manifest));
      // The shared machine is noisy: the fastest of a few attempts is the truest.
      let checked = Number.POSITIVE_INFINITY;
      let statsAlone = Number.POSITIVE_INFINITY;
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const referencing = repository.openSession(ADMIN, { id: randomUUID(), machine: 'bench' }).id;
        for (let start = 0; start < digests.length; start += 10000)
          repository.missing(ADMIN, referencing, digests.slice(start, start + 10000));
        checked = Math.min(checked, await timed(() => repository.commit(ADMIN, referencing, manifest)));
        statsAlone = Math.min(statsAlone, await timed(() => absentObjects(repository.store, digests)));
      }
      lines.push([
        String(count),
        `${((count * CHUNK_SIZE) / 2 ** 30).toFixed(0)} GiB`,
        trusted.toFixed(2),
        checked.toFixed(2),
        statsAlone.toFixed(2),
        `${((statsAlone / count) * 1e6).toFixed(1)} µs`,
      ]);
    } finally {
      repository.close();
      await fs.rm(directory, { recursive: true, force: true });
    }
  }
  process.stdout.write(`\n## Commit: store existence check (page cache warm)\n\n`);
  const load = (await fs.readFile('/proc/loadavg', 'utf8')).split(' ')[0];
  process.stdout.write(
    `${renderTable(['chunks', 'image at 512 KiB', 'commit, all uploaded in session (no stat) s', "commit, all reused (all stat'ed) s", 'the stats alone s', 'per chunk'], lines)}\n(load average ${load} at the end; best of ${ATTEMPTS} for the reused commit and the stats)\n`,
  );
}
