// Retention over 400 nightly images and garbage collection afterwards, on a real
// repository directory and catalog with a clock the test moves. The expected images
// were worked out by hand from the calendar (Proxmox Backup Server's prune rules).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { encodeChunk } from '../../src/format/chunk.js';
import { digestOf } from '../../src/format/digest.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import { silentLogger } from '../../src/core/log.js';
import type { Principal } from '../../server/auth.js';
import { GarbageCollector } from '../../server/jobs/gc.js';
import { Pruner, isoWeek, selectRetained } from '../../server/jobs/prune.js';
import { Policies } from '../../server/policies.js';
import { Repository } from '../../server/repository.js';
import { chunkKey } from '../../server/store/store.js';
import { rawDiskManifest } from '../helpers/manifest.js';
import { storedChunks } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const CHUNK = 256 << 10;
const DAY = 86400_000;
const FIRST = Date.parse('2025-01-01T01:30:00Z'); // 02:30 or 03:30 in Berlin: always the same local day
const NIGHTS = 400;

/** Kept by keep-last 3, keep-daily 14, keep-weekly 8, keep-monthly 12 (Europe/Berlin), newest first. */
const EXPECTED_DAYS = [
  // last 3
  '2026-02-04',
  '2026-02-03',
  '2026-02-02',
  // daily: the 14 days before those
  '2026-02-01',
  '2026-01-31',
  '2026-01-30',
  '2026-01-29',
  '2026-01-28',
  '2026-01-27',
  '2026-01-26',
  '2026-01-25',
  '2026-01-24',
  '2026-01-23',
  '2026-01-22',
  '2026-01-21',
  '2026-01-20',
  '2026-01-19',
  // weekly: the Sundays of ISO weeks 2026-W03 back to 2025-W48 (W04 to W06 already have an image)
  '2026-01-18',
  '2026-01-11',
  '2026-01-04',
  '2025-12-28',
  '2025-12-21',
  '2025-12-14',
  '2025-12-07',
  '2025-11-30',
  // monthly: the last day of each month from October 2025 back to January 2025 (only 10 exist)
  '2025-10-31',
  '2025-09-30',
  '2025-08-31',
  '2025-07-31',
  '2025-06-30',
  '2025-05-31',
  '2025-04-30',
  '2025-03-31',
  '2025-02-28',
  '2025-01-31',
];

const RETENTION = { keepLast: 3, keepHourly: 0, keepDaily: 14, keepWeekly: 8, keepMonthly: 12, keepYearly: 0 };
const dayOf = (time: number) => new Date(time).toISOString().slice(0, 10);

t.test('ISO weeks at year boundaries', async (t) => {
  t.same(isoWeek(2026, 1, 1), { year: 2026, week: 1 });
  t.same(isoWeek(2025, 12, 29), { year: 2026, week: 1 });
  t.same(isoWeek(2025, 12, 28), { year: 2025, week: 52 });
  t.same(isoWeek(2021, 1, 3), { year: 2020, week: 53 });
  t.same(isoWeek(2024, 12, 30), { year: 2025, week: 1 });
});

t.test('selection keeps exactly what the rules name', async (t) => {
  const images = Array.from({ length: NIGHTS }, (_, night) => ({ id: `alpha@${night}`, time: FIRST + night * DAY }));
  const decisions = selectRetained(images, RETENTION, 'Europe/Berlin');
  const kept = decisions.filter((decision) => decision.keep);
  t.same(
    kept.map((decision) => dayOf(decision.time)),
    EXPECTED_DAYS,
  );
  t.same(
    kept.slice(0, 3).map((decision) => decision.reason),
    ['last', 'last', 'last'],
  );
  t.equal(kept.filter((decision) => decision.reason === 'weekly').length, 8);
  t.equal(kept.filter((decision) => decision.reason === 'monthly').length, 10);

  // No rule: everything stays. Two images in one day: daily keeps the later one.
  t.ok(
    selectRetained(
      images,
      { keepLast: 0, keepHourly: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0 },
      'UTC',
    ).every((decision) => decision.keep),
  );
  const sameDay = selectRetained(
    [
      { id: 'a', time: Date.parse('2026-03-01T01:00:00Z') },
      { id: 'b', time: Date.parse('2026-03-01T20:00:00Z') },
    ],
    { ...RETENTION, keepLast: 0 },
    'UTC',
  );
  t.same(
    sameDay.filter((decision) => decision.keep).map((decision) => decision.id),
    ['b'],
  );
  // Days are local days: 23:30 UTC is already tomorrow in Berlin.
  const acrossMidnight = selectRetained(
    [
      { id: 'late', time: Date.parse('2026-03-01T23:30:00Z') },
      { id: 'early', time: Date.parse('2026-03-02T12:00:00Z') },
    ],
    { ...RETENTION, keepLast: 0, keepWeekly: 0, keepMonthly: 0 },
    'Europe/Berlin',
  );
  t.same(
    acrossMidnight.filter((decision) => decision.keep).map((decision) => decision.id),
    ['early'],
  );
});

const admin: Principal = { tokenId: 0, role: 'admin', machine: null };

/** A one-volume image of two chunks: one every image shares, one of its own night. */
async function commitNight(
  repository: Repository,
  night: number,
  common: { digest: string; frame: Buffer },
): Promise<{ id: string; own: string; index: string }> {
  const session = randomUUID();
  repository.openSession({ ...admin, role: 'machine', machine: 'alpha' }, { id: session, machine: 'alpha' });
  const machine: Principal = { tokenId: 0, role: 'machine', machine: 'alpha' };
  const own = encodeChunk(Buffer.alloc(CHUNK, `night ${night} `));
  const missing = repository.missing(machine, session, [common.digest, own.digest]);
  for (const chunk of [common, own])
    if (missing.includes(chunk.digest))
      await repository.putObject(machine, session, 'chunk', chunk.digest, chunk.frame);
  const index = new FixedIndex(CHUNK, 2 * CHUNK);
  index.set(0, common.digest);
  index.set(1, own.digest);
  const indexBytes = index.encode();
  const indexDigest = digestOf(indexBytes);
  await repository.putObject(machine, session, 'index', indexDigest, encodeFrame(indexBytes));
  const manifest = rawDiskManifest('alpha', index, indexDigest);
  const result = await repository.commit(machine, session, manifest);
  return { id: result.image.id, own: own.digest, index: indexDigest };
}

t.test('prune of 400 nightly images, then garbage collection', async (t) => {
  const directory = await tempDir(t, 'b365-retention-');
  let now = FIRST;
  const clock = { now: () => now };
  const { repository } = await Repository.open(path.join(directory, 'repo'), { clock, log: silentLogger });
  t.teardown(() => repository.close());
  const policies = new Policies(repository.catalog, 'UTC');
  policies.set('alpha', { timezone: 'Europe/Berlin', retention: RETENTION });
  const pruner = new Pruner(repository, policies, silentLogger);
  const gc = new GarbageCollector(repository, 3600, silentLogger);

  const common = encodeChunk(Buffer.alloc(CHUNK, 'shared by every night '));
  const nights: { id: string; own: string; index: string; day: string }[] = [];
  for (let night = 0; night < NIGHTS; night++) {
    now = FIRST + night * DAY;
    nights.push({ ...(await commitNight(repository, night, common)), day: dayOf(now) });
  }
  t.equal(repository.catalog.listImages('alpha').length, NIGHTS);

  now = Date.parse('2026-02-04T12:00:00Z');
  const dry = await pruner.prune(admin, { dryRun: true });
  t.equal(dry.imagesRemoved, NIGHTS - EXPECTED_DAYS.length);
  t.equal(repository.catalog.listImages('alpha').length, NIGHTS, 'a dry run removes nothing');

  const report = await pruner.prune(admin, {});
  const remaining = repository.catalog.listImages('alpha');
  t.same(remaining.map((image) => dayOf(image.createdAt)).reverse(), EXPECTED_DAYS);
  t.equal(report.imagesRemoved, NIGHTS - EXPECTED_DAYS.length);
  const manifests = (await fs.readdir(path.join(directory, 'repo', 'images', 'alpha'), { recursive: true })).filter(
    (name) => name.endsWith('manifest.json'),
  );
  t.equal(manifests.length, EXPECTED_DAYS.length, 'pruned manifests are gone from the store');

  // A backup that opened its session (and was told what the server has) before the
  // collection, and commits after it, with a grace period of zero.
  const keptDays = new Set(EXPECTED_DAYS);
  const pruned = nights.filter((night) => !keptDays.has(night.day));
  const kept = nights.filter((night) => keptDays.has(night.day));
  const machine: Principal = { tokenId: 0, role: 'machine', machine: 'alpha' };
  const running = randomUUID();
  now += 60_000;
  repository.openSession(machine, { id: running, machine: 'alpha' });
  const reused = pruned[0]!.own; // only a pruned image used it
  t.same(repository.missing(machine, running, [common.digest, reused]), [], 'the server still holds both');

  const bytesOfPruned = await Promise.all(
    pruned
      .flatMap((night) => [night.own, night.index])
      .map(async (digest) => (await repository.store.stat(chunkKey(digest)))!.size),
  );
  now += 60_000;
  const job = gc.begin({ dryRun: false, graceSeconds: 0 });
  await gc.idle();
  const finished = gc.job(admin, job.id);
  t.equal(finished.state, 'done', finished.error ?? '');
  t.equal(finished.report.keptPinned, 1, 'the chunk pinned by the open session was spared');
  t.equal(
    finished.report.removed,
    pruned.length * 2 - 1,
    "every pruned night's own chunk and index, but the pinned one",
  );
  t.equal(
    finished.report.bytesReclaimed,
    bytesOfPruned.reduce((sum, size) => sum + size, 0) - (await repository.store.stat(chunkKey(reused)))!.size,
  );

  const present = new Set(await storedChunks(path.join(directory, 'repo')));
  t.ok(present.has(common.digest), 'the chunk every night shares stays');
  t.ok(
    kept.every((night) => present.has(night.own) && present.has(night.index)),
    'chunks and indexes of kept images stay',
  );
  t.ok(
    pruned.slice(1).every((night) => !present.has(night.own) && !present.has(night.index)),
    'what only pruned images used is gone',
  );
  t.ok(present.has(reused), 'the pinned chunk is still there');

  // The backup goes on: a new chunk, its index, and the commit.
  const fresh = encodeChunk(Buffer.alloc(CHUNK, 'written during the collection '));
  t.same(repository.missing(machine, running, [fresh.digest]), [fresh.digest]);
  await repository.putObject(machine, running, 'chunk', fresh.digest, fresh.frame);
  const index = new FixedIndex(CHUNK, 3 * CHUNK);
  index.set(0, common.digest);
  index.set(1, reused);
  index.set(2, fresh.digest);
  const indexBytes = index.encode();
  await repository.putObject(machine, running, 'index', digestOf(indexBytes), encodeFrame(indexBytes));
  const manifest = rawDiskManifest('alpha', index, digestOf(indexBytes));
  now += 60_000;
  const committed = await repository.commit(machine, running, manifest);
  t.ok(committed.created, 'the backup that ran across the collection commits');
  for (const digest of [common.digest, reused, fresh.digest])
    t.ok(await repository.store.stat(chunkKey(digest)), `${digest.slice(0, 8)} is stored`);

  // A second collection finds nothing more to remove.
  now += 60_000;
  const again = gc.begin({ dryRun: false, graceSeconds: 0 });
  await gc.idle();
  t.equal(gc.job(admin, again.id).report.removed, 0);
});

t.test('an upload of an object being collected waits and stores it afresh', async (t) => {
  const directory = await tempDir(t, 'b365-gc-race-');
  const { repository } = await Repository.open(path.join(directory, 'repo'), {
    clock: { now: () => Date.now() },
    log: silentLogger,
  });
  t.teardown(() => repository.close());
  const machine: Principal = { tokenId: 0, role: 'machine', machine: 'beta' };
  const session = randomUUID();
  repository.openSession(machine, { id: session, machine: 'beta' });
  const chunk = encodeChunk(Buffer.alloc(CHUNK, 'racing '));
  await repository.putObject(machine, session, 'chunk', chunk.digest, chunk.frame);
  repository.catalog.forgetObject(chunk.digest);
  const removal = repository.removeObjectFile(chunk.digest);
  const upload = repository.putObject(machine, session, 'chunk', chunk.digest, chunk.frame);
  await Promise.all([removal, upload]);
  t.ok(await repository.store.stat(chunkKey(chunk.digest)), 'the uploaded chunk is there after the removal');
  t.ok(repository.catalog.objectInfo(chunk.digest), 'and in the catalog');
});
