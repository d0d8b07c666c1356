// Garbage collection (DESIGN.md decision 8): remove stored chunks and indexes that no
// image references. Marking reads every manifest in the store and in the catalog, and
// every index they name. An object is spared if it is referenced, pinned by an upload
// session whose lease has not expired, or touched (catalog or file time) within the
// grace period before the collection started. Images committed while it runs add their
// objects to its referenced set as they are recorded (Repository.watchCommits): their
// touches may predate the collection and their pins end at the commit. An image whose
// index is lost is marked failed and the collection goes on. The decision to remove
// and the catalog row's removal happen in one synchronous step, and an upload of the
// same object waits for the file to be gone (Repository.removeObjectFile).
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, UsageError } from '../../src/core/errors.js';
import type { GcJob } from '../../src/format/gc-job.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import { imageId, timestampOf } from '../../src/format/image-ref.js';
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
    // Watched from before the mark lists the images, so no commit falls between the two.
    const referenced = new Set<string>();
    const unwatch = this.repository.watchCommits(referenced);
    const done = this.collect(job, started, referenced).finally(() => {
      unwatch();
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

  private async collect(job: GcJob, started: number, referenced: Set<string>): Promise<void> {
    try {
      await this.pass(job, started, referenced);
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

  private async pass(job: GcJob, started: number, referenced: Set<string>): Promise<void> {
    this.expireSessions(job, started);
    await this.mark(job, referenced);
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

  /** Add to `referenced` every index of every manifest in the store or the catalog, and every chunk they name. */
  private async mark(job: GcJob, referenced: Set<string>): Promise<void> {
    const { catalog, store } = this.repository;
    const manifestKeys = new Set<string>();
    for await (const object of store.list(IMAGES_PREFIX))
      if (parseManifestKey(object.key)) manifestKeys.add(object.key);
    for (const image of catalog.listImages()) manifestKeys.add(manifestKey(image.machine, image.timestamp));
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
        const index = await this.indexOf(volume.index, key, job);
        // A lost index is looked up again for each image naming it, so each is marked failed.
        if (!index) continue;
        indexesSeen.add(volume.index);
        for (const digest of index.distinctDigests()) referenced.add(digest);
      }
    }
  }

  /**
   * The index, or null when it is lost: its image cannot be restored whatever is kept,
   * so it is marked failed and the collection goes on (stopping would make every later
   * collection fail on it). It is not made repairable by an upload of the index, since
   * the chunks only it named may be removed now. A corrupt or unreadable index still
   * stops the collection: it hides what it references, and verification quarantines it.
   */
  private async indexOf(digest: string, key: string, job: GcJob): Promise<FixedIndex | null> {
    try {
      return await this.repository.loadIndex(digest, `index ${digest} of ${key}`);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    const named = parseManifestKey(key);
    const image = named && this.repository.catalog.image(imageId(named.machine, named.timestamp));
    this.log.error(
      { gc: job.id, index: digest, manifest: key },
      'an image references a lost index; it is marked failed',
    );
    if (image && !job.dryRun) {
      this.repository.catalog.setImageDamage(image.id, []);
      await this.repository.recordImageState(image.id, 'failed', `its index ${digest} is missing from the repository`, {
        garbageCollection: job.id,
      });
    }
    return null;
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
      if (this.repository.isBeingUploaded(digest) || pinned.get(blob, catalog.now())) {
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
