// Verification jobs (DESIGN.md decision 9), one at a time so reports form a chain:
//  structural      manifest, indexes, every referenced chunk present;
//  content         + every distinct chunk read, decompressed and re-hashed once per run;
//                  corrupt chunks quarantined, the images that use them marked failed;
//                  lost and corrupt objects are forgotten by the catalog, so the next
//                  upload that holds them sends them again, and the images that lacked
//                  only such objects become ok again then (Repository.putObject);
//  restore-stream  + every volume reassembled in order and compared with its content digest.
// Each run ends with a report signed by the server's key that names the previous one.
import { randomBytes } from 'node:crypto';
import { FormatError, NotFoundError, UsageError } from '../../src/core/errors.js';
import { decodeChunk } from '../../src/format/chunk.js';
import { contentDigestOfPieces, volumeChunks } from '../../src/format/chunk-stream.js';
import { digestOf } from '../../src/format/digest.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import { timestampOf } from '../../src/format/image-ref.js';
import { type Manifest, manifestVolumes, parseManifestText } from '../../src/format/manifest.js';
import type { SignedDocument } from '../../src/format/signed-report.js';
import { VERIFY_LEVELS, type VerificationJob, type VerifyLevel } from '../../src/format/verification.js';
import { type Principal, requireRole } from '../auth.js';
import type { ImageRecord } from '../catalog/catalog.js';
import type { Repository } from '../repository.js';
import type { SigningKey } from '../signing.js';
import { isStorageFull } from '../storage-full.js';
import { chunkKey, manifestKey, quarantineKey, reportKey } from '../store/store.js';

export interface ImageVerification {
  image: string;
  machine: string;
  manifestDigest: string;
  indexRoots: string[];
  chunksReferenced: number;
  chunksVerified: number;
  chunksMissing: number;
  chunksCorrupt: number;
  bytesRead: number;
  volumes: { disk: string; volume: string; contentDigest: string; streamDigest: string | null; ok: boolean }[];
  problems: string[];
  result: 'ok' | 'failed';
}

export interface VerificationReport {
  format: 'backup365-verification-report';
  version: 1;
  id: string;
  level: VerifyLevel;
  scope: { all: boolean; images: string[] };
  startedAt: string;
  finishedAt: string;
  previousReport: string | null;
  keyId: string;
  summary: {
    images: number;
    ok: number;
    failed: number;
    chunksReferenced: number;
    chunksVerified: number;
    chunksMissing: number;
    chunksCorrupt: number;
    bytesRead: number;
  };
  images: ImageVerification[];
  missingChunks: string[];
  corruptChunks: string[];
  quarantined: string[];
  /** Images outside the scope that use a chunk found corrupt: marked failed too. */
  alsoFailed: string[];
  /** Indexes found absent or corrupt (forgotten by the catalog, corrupt ones quarantined). */
  damagedIndexes?: string[];
}

const REPORT_LIST_LIMIT = 1000;
/** Chunks read ahead while a volume is reassembled: the store's reads overlap the hashing. */
const STREAM_READ_AHEAD = 4;
/** Reports a full repository could not store, kept in memory so their job still has a result. */
const UNSTORED_REPORTS_KEPT = 16;

export class Verifier {
  private readonly jobs = new Map<string, VerificationJob>();
  private readonly unstoredReports = new Map<string, Buffer>();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly repository: Repository,
    private readonly signingKey: SigningKey,
  ) {
    repository.catalog.db.exec(`CREATE TABLE IF NOT EXISTS verifications (
      id TEXT PRIMARY KEY, level TEXT NOT NULL, scope TEXT NOT NULL, state TEXT NOT NULL, result TEXT,
      started_at INTEGER, finished_at INTEGER, report_digest TEXT, error TEXT)`);
  }

  start(principal: Principal, request: { images?: unknown; all?: unknown; level?: unknown }): VerificationJob {
    requireRole(principal, 'admin', 'auditor');
    const level = (request.level ?? 'content') as VerifyLevel;
    if (!VERIFY_LEVELS.includes(level)) throw new UsageError(`level must be one of ${VERIFY_LEVELS.join(', ')}`);
    const all = request.all === true;
    const images = Array.isArray(request.images) ? request.images.map(String) : [];
    if (!all && images.length === 0) throw new UsageError('name images to verify, or ask for all');
    // Resolve now, so a typo fails the request instead of the job.
    const resolved = all ? [] : images.map((reference) => this.repository.resolveImage(principal, reference).id);
    const now = new Date(this.repository.clock.now());
    const id = `${timestampOf(now)}-${randomBytes(3).toString('hex')}`;
    const job: VerificationJob = {
      id,
      level,
      scope: { all, images: resolved },
      state: 'queued',
      result: null,
      startedAt: null,
      finishedAt: null,
      progress: { done: 0, total: 0, stage: 'queued' },
      reportDigest: null,
      error: null,
    };
    this.jobs.set(id, job);
    this.unlessFull('the verification job', () =>
      this.repository.catalog.db
        .prepare('INSERT INTO verifications (id, level, scope, state) VALUES (?, ?, ?, ?)')
        .run(id, level, JSON.stringify(job.scope), 'queued'),
    );
    this.queue = this.queue.then(() => this.run(job));
    return job;
  }

  job(principal: Principal, id: string): VerificationJob {
    requireRole(principal, 'admin', 'auditor');
    const job = this.jobs.get(id) ?? this.jobFromCatalog(id);
    if (!job) throw new NotFoundError(`verification ${id} does not exist`);
    return job;
  }

  list(principal: Principal): VerificationJob[] {
    requireRole(principal, 'admin', 'auditor');
    const rows = this.repository.catalog.db
      .prepare(`SELECT id FROM verifications ORDER BY id DESC LIMIT ${REPORT_LIST_LIMIT}`)
      .all() as { id: string }[];
    return rows.map((row) => this.jobs.get(row.id) ?? this.jobFromCatalog(row.id)!).filter(Boolean);
  }

  async reportBytes(principal: Principal, id: string): Promise<Buffer> {
    const job = this.job(principal, id);
    if (job.state !== 'done') throw new NotFoundError(`verification ${id} has no report yet (${job.state})`);
    const unstored = this.unstoredReports.get(id);
    if (unstored) return unstored;
    if (job.reportNotStored)
      throw new NotFoundError(
        `the report of verification ${id} could not be stored (${job.reportNotStored}) and is gone since the server restarted`,
      );
    return this.repository.store.get(reportKey(id));
  }

  /** Wait for every queued job (tests and shutdown). */
  idle(): Promise<void> {
    return this.queue;
  }

  private jobFromCatalog(id: string): VerificationJob | null {
    const row = this.repository.catalog.db.prepare('SELECT * FROM verifications WHERE id = ?').get(id) as
      | {
          id: string;
          level: VerifyLevel;
          scope: string;
          state: VerificationJob['state'];
          result: VerificationJob['result'];
          started_at: number | null;
          finished_at: number | null;
          report_digest: string | null;
          error: string | null;
        }
      | undefined;
    if (!row) return null;
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    // A job that was running when the server stopped did not finish.
    const state = row.state === 'running' || row.state === 'queued' ? 'error' : row.state;
    return {
      id: row.id,
      level: row.level,
      scope: JSON.parse(row.scope),
      state,
      result: row.result,
      startedAt: iso(row.started_at),
      finishedAt: iso(row.finished_at),
      progress: { done: 0, total: 0, stage: state },
      reportDigest: row.report_digest,
      error: row.error ?? (state === 'error' && row.state !== 'error' ? 'interrupted by a server restart' : null),
    };
  }

  private async run(job: VerificationJob): Promise<void> {
    const { catalog, log } = this.repository;
    job.state = 'running';
    job.startedAt = new Date(this.repository.clock.now()).toISOString();
    this.unlessFull('the verification job', () =>
      catalog.db
        .prepare('UPDATE verifications SET state = ?, started_at = ? WHERE id = ?')
        .run('running', Date.parse(job.startedAt!), job.id),
    );
    try {
      const report = await this.verify(job);
      const signed: SignedDocument<VerificationReport> = this.signingKey.sign(report);
      const bytes = Buffer.from(`${JSON.stringify(signed, null, 2)}\n`);
      job.reportDigest = digestOf(bytes);
      await this.storeReport(job, bytes);
      job.result = report.summary.failed > 0 ? 'failed' : 'ok';
      job.state = 'done';
      log.info(
        { verification: job.id, verifyLevel: job.level, result: job.result, failed: report.summary.failed },
        'verification finished',
      );
    } catch (error) {
      job.state = 'error';
      job.error = (error as Error).message;
      log.error({ verification: job.id, err: error }, 'verification could not run');
    }
    job.finishedAt = new Date(this.repository.clock.now()).toISOString();
    this.unlessFull('the verification result', () =>
      catalog.db
        .prepare(
          'UPDATE verifications SET state = ?, result = ?, finished_at = ?, report_digest = ?, error = ? WHERE id = ?',
        )
        .run(job.state, job.result, Date.parse(job.finishedAt!), job.reportDigest, job.error, job.id),
    );
  }

  /**
   * Written last, after everything was read: on a full disk the result still stands,
   * the report is served from memory, and the chain of reports skips it.
   */
  private async storeReport(job: VerificationJob, bytes: Buffer): Promise<void> {
    try {
      await this.repository.store.put(reportKey(job.id), bytes, { ifAbsent: true });
      this.repository.catalog.setMeta('last_report_digest', job.reportDigest!);
    } catch (error) {
      if (!isStorageFull(error)) throw error;
      job.reportNotStored = (error as Error).message;
      this.unstoredReports.set(job.id, bytes);
      if (this.unstoredReports.size > UNSTORED_REPORTS_KEPT)
        this.unstoredReports.delete(this.unstoredReports.keys().next().value!);
      this.repository.log.error(
        { verification: job.id, err: error },
        'the repository is full: the verification report could not be stored',
      );
    }
  }

  /** Bookkeeping that a full repository must not turn into a failed verification. */
  private unlessFull(what: string, write: () => unknown): void {
    try {
      write();
    } catch (error) {
      if (!isStorageFull(error)) throw error;
      this.repository.log.error({ err: error }, `the repository is full: ${what} was not recorded`);
    }
  }

  private async verify(job: VerificationJob): Promise<VerificationReport> {
    const { catalog, store } = this.repository;
    const images: ImageRecord[] = job.scope.all
      ? catalog.listImages()
      : job.scope.images.map((id) => catalog.image(id)).filter((image): image is ImageRecord => image !== null);
    const results = new Map<string, ImageVerification>();
    const manifests = new Map<string, Manifest>();
    const indexes = new Map<string, FixedIndex>();
    const chunkUsers = new Map<string, Set<string>>();
    const missing = new Set<string>();
    // Per image, the objects it lacks (lost or corrupt); an image whose only problems
    // are such objects is whole again once they are uploaded again.
    const damage = new Map<string, Set<string>>();
    const damageOf = (id: string): Set<string> => {
      let set = damage.get(id);
      if (!set) damage.set(id, (set = new Set()));
      return set;
    };
    const damagedIndexes = new Map<string, 'missing' | 'corrupt'>();
    const otherProblems = new Set<string>();

    // Structural: the manifest as recorded, its indexes, every chunk present.
    job.progress = { done: 0, total: images.length, stage: 'structure' };
    for (const image of images) {
      const result: ImageVerification = {
        image: image.id,
        machine: image.machine,
        manifestDigest: image.manifestDigest,
        indexRoots: [],
        chunksReferenced: 0,
        chunksVerified: 0,
        chunksMissing: 0,
        chunksCorrupt: 0,
        bytesRead: 0,
        volumes: [],
        problems: [],
        result: 'ok',
      };
      results.set(image.id, result);
      try {
        const bytes = await store.get(manifestKey(image.machine, image.timestamp));
        result.bytesRead += bytes.length;
        const actual = digestOf(bytes);
        if (actual !== image.manifestDigest) {
          result.problems.push(`manifest hashes to ${actual}, recorded ${image.manifestDigest}`);
          otherProblems.add(image.id);
        }
        const manifest = parseManifestText(bytes.toString('utf8'), `manifest of ${image.id}`);
        manifests.set(image.id, manifest);
        const referenced = new Set<string>();
        for (const { disk, volume } of manifestVolumes(manifest)) {
          result.indexRoots.push(volume.index);
          try {
            let index = indexes.get(volume.index);
            if (!index) {
              index = await this.repository.loadIndex(volume.index, `index of ${image.id} ${disk.id}/${volume.id}`);
              indexes.set(volume.index, index);
            }
            for (const digest of index.distinctDigests()) referenced.add(digest);
          } catch (error) {
            const lost = error instanceof NotFoundError;
            if (!lost && !(error instanceof FormatError)) throw error;
            damagedIndexes.set(volume.index, lost ? 'missing' : 'corrupt');
            damageOf(image.id).add(volume.index);
            result.problems.push(
              lost
                ? `index ${volume.index} of ${disk.id}/${volume.id} is missing`
                : `index ${volume.index} of ${disk.id}/${volume.id} is corrupt: ${(error as Error).message}`,
            );
          }
        }
        result.chunksReferenced = referenced.size;
        for (const digest of referenced) {
          let users = chunkUsers.get(digest);
          if (!users) {
            users = new Set();
            chunkUsers.set(digest, users);
            if (!(await store.stat(chunkKey(digest)))) missing.add(digest);
          }
          users.add(image.id);
          if (missing.has(digest)) {
            result.chunksMissing++;
            damageOf(image.id).add(digest);
          }
        }
      } catch (error) {
        result.problems.push(
          error instanceof NotFoundError ? 'manifest is missing from the store' : (error as Error).message,
        );
        otherProblems.add(image.id);
      }
      job.progress.done++;
    }

    // Content: each distinct chunk once.
    const corrupt = new Set<string>();
    const verified = new Set<string>();
    const bytesPerImage = new Map<string, number>();
    if (job.level !== 'structural') {
      const digests = [...chunkUsers.keys()].filter((digest) => !missing.has(digest));
      job.progress = { done: 0, total: digests.length, stage: 'content' };
      for (const digest of digests) {
        const outcome = await this.checkChunk(digest);
        if (outcome.ok) verified.add(digest);
        else corrupt.add(digest);
        for (const user of chunkUsers.get(digest)!) {
          bytesPerImage.set(user, (bytesPerImage.get(user) ?? 0) + outcome.bytes);
          if (!outcome.ok) damageOf(user).add(digest);
        }
        job.progress.done++;
      }
    }

    // Restore stream: every volume in order, against its content digest.
    if (job.level === 'restore-stream') {
      job.progress = { done: 0, total: images.length, stage: 'restore-stream' };
      for (const image of images) {
        const manifest = manifests.get(image.id);
        const result = results.get(image.id)!;
        if (!manifest) continue;
        if (damage.has(image.id)) {
          // Its lost objects are already named; a stream cannot be reassembled without them.
          for (const { disk, volume } of manifestVolumes(manifest))
            result.volumes.push({
              disk: disk.id,
              volume: volume.id,
              contentDigest: volume.contentDigest,
              streamDigest: null,
              ok: false,
            });
          job.progress.done++;
          continue;
        }
        for (const { disk, volume } of manifestVolumes(manifest)) {
          const index = indexes.get(volume.index);
          let streamDigest: string | null = null;
          if (index) {
            try {
              streamDigest = await this.streamDigest(index);
            } catch (error) {
              result.problems.push(`${disk.id}/${volume.id}: ${(error as Error).message}`);
              otherProblems.add(image.id);
            }
          }
          const ok = streamDigest === volume.contentDigest;
          if (streamDigest && !ok) {
            result.problems.push(
              `${disk.id}/${volume.id}: reassembled volume hashes to ${streamDigest}, the image says ${volume.contentDigest}`,
            );
            otherProblems.add(image.id);
          }
          result.volumes.push({
            disk: disk.id,
            volume: volume.id,
            contentDigest: volume.contentDigest,
            streamDigest,
            ok,
          });
        }
        job.progress.done++;
      }
    } else {
      for (const [id, manifest] of manifests) {
        for (const { disk, volume } of manifestVolumes(manifest))
          results.get(id)!.volumes.push({
            disk: disk.id,
            volume: volume.id,
            contentDigest: volume.contentDigest,
            streamDigest: null,
            ok: true,
          });
      }
    }

    // Quarantine what is corrupt; forget what is lost or corrupt, so that `missing` asks
    // for it again; fail every image that uses a missing or corrupt object.
    const quarantined: string[] = [];
    const corruptObjects = [
      ...corrupt,
      ...[...damagedIndexes].filter(([, how]) => how === 'corrupt').map(([digest]) => digest),
    ];
    for (const digest of corruptObjects) {
      try {
        await this.repository.store.move(chunkKey(digest), quarantineKey(digest));
        quarantined.push(digest);
      } catch (error) {
        this.repository.log.error({ digest, err: error }, 'could not quarantine a corrupt object');
      }
    }
    const lostOrCorrupt = new Set([...corruptObjects, ...missing, ...damagedIndexes.keys()]);
    for (const digest of lostOrCorrupt) catalog.forgetObject(digest);
    for (const [digest, users] of chunkUsers) {
      for (const user of users) {
        const result = results.get(user)!;
        if (corrupt.has(digest)) result.chunksCorrupt++;
        else if (verified.has(digest)) result.chunksVerified++;
      }
    }
    const outside = lostOrCorrupt.size
      ? await this.imagesUsing(lostOrCorrupt, new Set(results.keys()))
      : new Map<string, Set<string>>();
    const alsoFailed = [...outside.keys()];
    for (const result of results.values()) {
      result.bytesRead += bytesPerImage.get(result.image) ?? 0;
      if (result.chunksMissing) result.problems.push(`${result.chunksMissing} referenced chunks are missing`);
      if (result.chunksCorrupt)
        result.problems.push(`${result.chunksCorrupt} referenced chunks are corrupt (quarantined)`);
      result.result = result.problems.length ? 'failed' : 'ok';
      // Only an image whose every problem is a lost or corrupt object can be repaired by uploads.
      catalog.setImageDamage(result.image, otherProblems.has(result.image) ? [] : (damage.get(result.image) ?? []));
      await this.repository.recordImageState(result.image, result.result, result.problems.join('; ') || null, {
        verification: job.id,
      });
    }
    for (const [id, lacks] of outside) {
      const image = catalog.image(id);
      // An image that had failed for another reason stays failed for it, and is not repairable by uploads.
      const repairable = image !== null && (image.state === 'ok' || catalog.imageDamage(id).length > 0);
      if (repairable) catalog.setImageDamage(id, [...catalog.imageDamage(id), ...lacks]);
      await this.repository.recordImageState(id, 'failed', 'uses an object found lost or corrupt by verification', {
        verification: job.id,
      });
    }

    const list = [...results.values()];
    const sum = (pick: (item: ImageVerification) => number) => list.reduce((total, item) => total + pick(item), 0);
    return {
      format: 'backup365-verification-report',
      version: 1,
      id: job.id,
      level: job.level,
      scope: job.scope,
      startedAt: job.startedAt!,
      finishedAt: new Date(this.repository.clock.now()).toISOString(),
      previousReport: catalog.getMeta('last_report_digest'),
      keyId: this.signingKey.keyId,
      summary: {
        images: list.length,
        ok: list.filter((item) => item.result === 'ok').length,
        failed: list.filter((item) => item.result === 'failed').length,
        chunksReferenced: chunkUsers.size,
        chunksVerified: verified.size,
        chunksMissing: missing.size,
        chunksCorrupt: corrupt.size,
        bytesRead: sum((item) => item.bytesRead),
      },
      images: list,
      missingChunks: [...missing],
      corruptChunks: [...corrupt],
      quarantined,
      alsoFailed,
      damagedIndexes: [...damagedIndexes.keys()],
    };
  }

  private async checkChunk(digest: string): Promise<{ ok: boolean; bytes: number }> {
    let frame: Buffer;
    try {
      frame = await this.repository.store.get(chunkKey(digest));
    } catch {
      return { ok: false, bytes: 0 };
    }
    try {
      decodeChunk(frame, digest);
      return { ok: true, bytes: frame.length };
    } catch (error) {
      if (error instanceof FormatError) return { ok: false, bytes: frame.length };
      throw error;
    }
  }

  /** The content digest of a volume reassembled from the store, as a restore would write it. */
  private streamDigest(index: FixedIndex): Promise<string> {
    const { store } = this.repository;
    return contentDigestOfPieces(
      volumeChunks(index, (digest) => store.get(chunkKey(digest)), { readAhead: STREAM_READ_AHEAD }),
    );
  }

  /** Every image outside `skip` whose indexes name one of `digests`, with the ones it names. */
  private async imagesUsing(digests: Set<string>, skip: Set<string>): Promise<Map<string, Set<string>>> {
    const users = new Map<string, Set<string>>();
    for (const image of this.repository.catalog.listImages()) {
      if (skip.has(image.id)) continue;
      const used = new Set<string>();
      try {
        const bytes = await this.repository.store.get(manifestKey(image.machine, image.timestamp));
        const manifest = parseManifestText(bytes.toString('utf8'));
        for (const { volume } of manifestVolumes(manifest)) {
          if (digests.has(volume.index)) {
            used.add(volume.index);
            continue;
          }
          const index = await this.repository.loadIndex(volume.index);
          for (const digest of index.distinctDigests()) if (digests.has(digest)) used.add(digest);
        }
      } catch {
        // Unreadable: it cannot be shown whole, so it is failed too (not repairable by uploads).
        users.set(image.id, new Set());
        continue;
      }
      if (used.size) users.set(image.id, used);
    }
    return users;
  }
}
