// `POST /reindex`: reconcile the catalog with the store while the server runs (see
// reindex.ts for what changes and what is spared). One at a time, and never while
// garbage collection runs: a collection deletes files the listing may already have
// counted, so each refuses to start while the other is running.
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError } from '../../src/core/errors.js';
import { timestampOf } from '../../src/format/image-ref.js';
import type { Logger } from '../../src/core/log.js';
import { type Principal, requireRole } from '../auth.js';
import { type ReindexReport, reindex } from '../reindex.js';
import type { Repository } from '../repository.js';
import type { GarbageCollector } from './gc.js';

export interface ReindexJob {
  id: string;
  state: 'running' | 'done' | 'error';
  startedAt: string;
  finishedAt: string | null;
  report: ReindexReport | null;
  error: string | null;
}

const KEPT_JOBS = 20;

export class OnlineReindex {
  private readonly jobs = new Map<string, ReindexJob>();
  private running: Promise<void> | null = null;

  constructor(
    private readonly repository: Repository,
    private readonly gc: GarbageCollector,
    private readonly log: Logger,
  ) {
    gc.refuseWhile(() => (this.running ? 'a reindex is running; start garbage collection when it has finished' : null));
  }

  start(principal: Principal): ReindexJob {
    requireRole(principal, 'admin');
    const current = [...this.jobs.values()].find((job) => job.state === 'running');
    if (current) throw new ConflictError(`reindex ${current.id} is already running`, { details: { job: current } });
    if (this.gc.running) throw new ConflictError('garbage collection is running; reindex when it has finished');
    const started = this.repository.clock.now();
    const job: ReindexJob = {
      id: `${timestampOf(new Date(started))}-${randomBytes(3).toString('hex')}`,
      state: 'running',
      startedAt: new Date(started).toISOString(),
      finishedAt: null,
      report: null,
      error: null,
    };
    this.jobs.set(job.id, job);
    for (const id of [...this.jobs.keys()].slice(0, Math.max(0, this.jobs.size - KEPT_JOBS))) this.jobs.delete(id);
    this.running = this.run(job).finally(() => {
      this.running = null;
    });
    return job;
  }

  job(principal: Principal, id: string): ReindexJob {
    requireRole(principal, 'admin', 'auditor');
    const job = this.jobs.get(id);
    if (!job) throw new NotFoundError(`reindex ${id} does not exist (jobs are kept until the server restarts)`);
    return job;
  }

  /** Wait for the running reindex, if any (tests and shutdown). */
  async idle(): Promise<void> {
    await this.running;
  }

  private async run(job: ReindexJob): Promise<void> {
    try {
      job.report = await reindex(this.repository, { online: true });
      job.state = 'done';
      this.log.info(
        { reindex: job.id, ...job.report.changes, skipped: job.report.skipped.length },
        'online reindex finished',
      );
    } catch (error) {
      job.state = 'error';
      job.error = (error as Error).message;
      this.log.error({ reindex: job.id, err: error }, 'online reindex stopped');
    }
    job.finishedAt = new Date(this.repository.clock.now()).toISOString();
  }
}
