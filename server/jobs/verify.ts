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
import { NotFoundError, UsageError } from '../../src/core/errors.js';
import { digestOf } from '../../src/format/digest.js';
import { timestampOf } from '../../src/format/image-ref.js';
import type { SignedDocument } from '../../src/format/signed-report.js';
import { VERIFY_LEVELS, type VerificationJob, type VerifyLevel } from '../../src/format/verification.js';
import { type Principal, requireRole } from '../auth.js';
import type { Repository } from '../repository.js';
import type { SigningKey } from '../signing.js';
import { isStorageFull } from '../storage-full.js';
import { reportKey } from '../store/store.js';
import { VerificationFindings } from './verify-findings.js';
import { checkContent } from './verify-content.js';
import { recordOutcome } from './verify-outcome.js';
import { type VerificationReport, assembleReport } from './verify-report.js';
import { checkImageStreams, unstreamedVolumes } from './verify-stream.js';
import { checkImageStructure, imagesInScope } from './verify-structure.js';

export type { ImageVerification, VerificationReport, VolumeVerification } from './verify-report.js';

const REPORT_LIST_LIMIT = 1000;
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

  /** The stages, in order; each level runs the ones before it too (DESIGN.md decision 9). */
  private async verify(job: VerificationJob): Promise<VerificationReport> {
    const { repository } = this;
    const images = imagesInScope(repository, job.scope);
    const findings = new VerificationFindings();
    const tick = () => {
      job.progress.done++;
    };
    job.progress = { done: 0, total: images.length, stage: 'structure' };
    for (const image of images) {
      await checkImageStructure(repository, image, findings);
      tick();
    }
    if (job.level !== 'structural') {
      const digests = findings.presentChunks();
      job.progress = { done: 0, total: digests.length, stage: 'content' };
      await checkContent(repository.store, digests, findings, tick);
    }
    if (job.level === 'restore-stream') {
      job.progress = { done: 0, total: images.length, stage: 'restore-stream' };
      for (const image of images) {
        await checkImageStreams(repository.store, image.id, findings);
        tick();
      }
    } else {
      for (const [id, manifest] of findings.manifests)
        findings.result(id).volumes.push(...unstreamedVolumes(manifest, true));
    }
    await recordOutcome(repository, job.id, findings);
    return assembleReport(job, findings, {
      finishedAt: new Date(repository.clock.now()).toISOString(),
      previousReport: repository.catalog.getMeta('last_report_digest'),
      keyId: this.signingKey.keyId,
    });
  }
}
