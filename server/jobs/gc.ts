// Garbage collection (DESIGN.md decision 8): remove stored chunks and indexes that no
// image references. Marking reads every manifest in the store and in the catalog, and
// every index they name. An object is spared if it is referenced, pinned by an upload
// session whose lease has not expired, or touched (catalog or file time) within the
// grace period before the collection started; images committed while it runs touch
// all their objects at commit, so they fall in that last group. The decision to remove
// and the catalog row's removal happen in one synchronous step, and an upload of the
// same object waits for the file to be gone (Repository.removeObjectFile).
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, UsageError } from '../../src/core/errors.js';
import type { GcJob } from '../../src/format/gc-job.js';
import { timestampOf } from '../../src/format/image-ref.js';
import { manifestVolumes, parseManifestText } from '../../src/format/manifest.js';
import type { Logger } from '../../src/core/log.js';
import { type Principal, requireRole } from '../auth.js';
import type { Repository } from '../repository.js';
import { CHUNKS_PREFIX, IMAGES_PREFIX, digestOfChunkKey, manifestKey, parseManifestKey } from '../store/store.js';

export type { GcJob, GcReport } from '../../src/format/gc-job.js';

export class GarbageCollector {
  private current: { job: GcJob; done: Promise<void> } | null = null;
  /** Other jobs a collection must not overlap: each says why not, or null. */
  private readonly exclusions: (() => string | null)[] = [];

  constructor(
    private readonly repository: Repository,
    private readonly defaultGraceSeconds: number,
    private readonly log: Logger,
  ) {
    repository.catalog.db.exec(`CREATE TABLE IF NOT EXISTS gc_runs (
      id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, finished_at INTEGER, state TEXT NOT NULL, dry_run INTEGER NOT NULL,
      bytes_reclaimed INTEGER NOT NULL DEFAULT 0, job TEXT NOT NULL)`);
    // A collection cut short by a restart did not finish.
    repository.catalog.db.prepare("UPDATE gc_runs SET state = 'error' WHERE state = 'running'").run();
  }

  start(principal: Principal, options: { dryRun?: unknown; graceSeconds?: unknown }): GcJob {
    requireRole(principal, 'admin');
    let grace = this.defaultGraceSeconds;
    if (options.graceSeconds !== undefined && options.graceSeconds !== null) {
      grace = Number(options.graceSeconds);
      if (!Number.isFinite(grace) || grace < 0)
        throw new UsageError('graceSeconds must be a number of seconds, 0 or more');
    }
    return this.begin({ dryRun: options.dryRun === true, graceSeconds: grace });
  }

  get running(): boolean {
    return this.current !== null;
  }

  /** Refuse to start while `reason` gives a reason. */
  refuseWhile(reason: () => string | null): void {
    this.exclusions.push(reason);
  }

  /** Start a collection, or refuse while one runs (there is never more than one). */
  begin(options: { dryRun: boolean; graceSeconds: number }): GcJob {
    if (this.current)
      throw new ConflictError(`garbage collection ${this.current.job.id} is already running`, {
        details: { job: this.current.job },
      });
    for (const exclusion of this.exclusions) {
      const reason = exclusion();
      if (reason) throw new ConflictError(reason);
    }
    const started = this.repository.clock.now();
    const job: GcJob = {
      id: `${timestampOf(new Date(started))}-${randomBytes(3).toString('hex')}`,
      dryRun: options.dryRun,
      graceSeconds: options.graceSeconds,
      state: 'running',
      startedAt: new Date(started).toISOString(),
      finishedAt: null,
      stage: 'marking',
      report: {
        manifests: 0,
        referenced: 0,
        scanned: 0,
        keptPinned: 0,
        keptRecent: 0,
        removed: 0,
        bytesReclaimed: 0,
        sessionsExpired: 0,
      },
      error: null,
    };
    this.save(job);
    const done = this.collect(job, started).finally(() => {
      this.current = null;
    });
    this.current = { job, done };
    return job;
  }

  /** Wait for the running collection, if any (tests and shutdown). */
  async idle(): Promise<void> {
    await this.current?.done;
  }

  job(principal: Principal, id: string): GcJob {
    requireRole(principal, 'admin', 'auditor');
    if (this.current?.job.id === id) return this.current.job;
    const row = this.repository.catalog.db.prepare('SELECT job, state FROM gc_runs WHERE id = ?').get(id) as
      | { job: string; state: GcJob['state'] }
      | undefined;
    if (!row) throw new NotFoundError(`garbage collection ${id} does not exist`);
    const job = JSON.parse(row.job) as GcJob;
    if (row.state === 'error' && job.state === 'running')
      Object.assign(job, { state: 'error', error: 'interrupted by a server restart' });
    return job;
  }

  list(principal: Principal, limit = 50): GcJob[] {
    requireRole(principal, 'admin', 'auditor');
    const rows = this.repository.catalog.db
      .prepare('SELECT id FROM gc_runs ORDER BY started_at DESC LIMIT ?')
      .all(limit) as { id: string }[];
    return rows.map((row) => this.job(principal, row.id));
  }

  totalReclaimed(): number {
    return (
      this.repository.catalog.db
        .prepare("SELECT COALESCE(SUM(bytes_reclaimed), 0) AS bytes FROM gc_runs WHERE dry_run = 0 AND state = 'done'")
        .get() as { bytes: number }
    ).bytes;
  }

  private save(job: GcJob): void {
    this.repository.catalog.db
      .prepare(
        `INSERT INTO gc_runs (id, started_at, finished_at, state, dry_run, bytes_reclaimed, job) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at, state = excluded.state, bytes_reclaimed = excluded.bytes_reclaimed, job = excluded.job`,
      )
      .run(
        job.id,
        Date.parse(job.startedAt),
        job.finishedAt ? Date.parse(job.finishedAt) : null,
        job.state,
        job.dryRun ? 1 : 0,
        job.report.bytesReclaimed,
        JSON.stringify(job),
      );
  }

  private async collect(job: GcJob, started: number): Promise<void> {
    try {
      await this.pass(job, started);
      job.state = 'done';
      this.log.info({ gc: job.id, dryRun: job.dryRun, ...job.report }, 'garbage collection finished');
    } catch (error) {
      job.state = 'error';
      job.error = (error as Error).message;
      this.log.error({ gc: job.id, err: error }, 'garbage collection stopped; nothing more was removed');
    }
    job.stage = job.state;
    job.finishedAt = new Date(this.repository.clock.now()).toISOString();
    this.save(job);
  }

  private async pass(job: GcJob, started: number): Promise<void> {
    this.expireSessions(job, started);
    const referenced = await this.mark(job);
    job.report.referenced = referenced.size;
    job.stage = 'sweeping';
    await this.sweep(job, referenced, started - job.graceSeconds * 1000);
  }

  /** Sessions whose lease ran out before this collection no longer pin anything. */
  private expireSessions(job: GcJob, started: number): void {
    const { catalog } = this.repository;
    const expired = catalog.db
      .prepare("SELECT id FROM sessions WHERE state = 'open' AND lease_expires_at < ?")
      .all(started) as { id: string }[];
    if (!job.dryRun) for (const session of expired) catalog.abortSession(session.id);
    job.report.sessionsExpired = expired.length;
  }

  /** Every object referenced by a manifest the store or the catalog knows, and every index it names. */
  private async mark(job: GcJob): Promise<Set<string>> {
    const { catalog, store } = this.repository;
    const manifestKeys = new Set<string>();
    for await (const object of store.list(IMAGES_PREFIX))
      if (parseManifestKey(object.key)) manifestKeys.add(object.key);
    for (const image of catalog.listImages()) manifestKeys.add(manifestKey(image.machine, image.timestamp));
    const referenced = new Set<string>();
    const indexesSeen = new Set<string>();
    for (const key of manifestKeys) {
      let text: string;
      try {
        text = (await store.get(key)).toString('utf8');
      } catch (error) {
        // Deleted since it was listed (a prune, an admin): nothing to keep for it.
        if (error instanceof NotFoundError) continue;
        throw error;
      }
      const manifest = parseManifestText(text, key);
      job.report.manifests++;
      for (const { volume } of manifestVolumes(manifest)) {
        referenced.add(volume.index);
        if (indexesSeen.has(volume.index)) continue;
        indexesSeen.add(volume.index);
        // An unreadable index hides what it references: stop rather than guess.
        const index = await this.repository.loadIndex(volume.index, `index ${volume.index} of ${key}`);
        for (const digest of index.distinctDigests()) referenced.add(digest);
      }
    }
    return referenced;
  }

  /** Remove every stored object not referenced, not pinned by an open session, and not touched since `cutoff`. */
  private async sweep(job: GcJob, referenced: Set<string>, cutoff: number): Promise<void> {
    const { catalog, store } = this.repository;
    const db = catalog.db;
    const pinned = db.prepare(
      "SELECT 1 FROM session_objects so JOIN sessions s ON s.id = so.session_id WHERE so.digest = ? AND s.state = 'open' AND s.lease_expires_at >= ? LIMIT 1",
    );
    const touched = db.prepare('SELECT last_touched AS lastTouched FROM objects WHERE digest = ?');
    const forget = db.transaction((blob: Buffer) => {
      db.prepare('DELETE FROM objects WHERE digest = ?').run(blob);
      db.prepare('DELETE FROM machine_objects WHERE digest = ?').run(blob);
      db.prepare('DELETE FROM session_objects WHERE digest = ?').run(blob);
    });
    for await (const object of store.list(CHUNKS_PREFIX)) {
      const digest = digestOfChunkKey(object.key);
      if (!digest) continue;
      job.report.scanned++;
      if (referenced.has(digest)) continue;
      // From here to forget() nothing awaits: no request can pin or touch in between.
      const blob = Buffer.from(digest, 'hex');
      if (pinned.get(blob, catalog.now())) {
        job.report.keptPinned++;
        continue;
      }
      const row = touched.get(blob) as { lastTouched: number } | undefined;
      if ((row && row.lastTouched >= cutoff) || object.mtimeMs >= cutoff) {
        job.report.keptRecent++;
        continue;
      }
      job.report.removed++;
      job.report.bytesReclaimed += object.size;
      if (job.dryRun) continue;
      forget(blob);
      await this.repository.removeObjectFile(digest);
    }
  }
}
