// The latest verification result of each machine at each level, for /metrics. A job's
// own result covers all its images together, so each machine's result is read from the
// job's signed report (once per job: reports never change) and kept in memory.
import type { Catalog } from '../catalog/catalog.js';
import type { ObjectStore } from '../store/store.js';
import type { ImageVerification, VerificationReport } from '../jobs/verify.js';
import { reportKey } from '../store/store.js';
import type { SignedDocument } from '../../src/format/signed-report.js';

export interface MachineVerification {
  machine: string;
  level: string;
  ok: boolean;
  /** Milliseconds since the epoch, the server's clock. */
  finishedAt: number;
}

/** Newest first; a year of nightly verifications at three levels is well within it. */
const JOBS_CONSIDERED = 2000;
const JOBS_CACHED = 4000;

interface FinishedJob {
  id: string;
  level: string;
  finishedAt: number;
}

export class VerificationResults {
  private readonly perJob = new Map<string, Map<string, boolean>>();

  constructor(
    private readonly catalog: Catalog,
    private readonly store: ObjectStore,
  ) {}

  async latest(): Promise<MachineVerification[]> {
    const latest = new Map<string, MachineVerification>();
    for (const job of this.finishedJobs()) {
      const machines = await this.machineResults(job.id);
      for (const [machine, ok] of machines) {
        const key = `${machine}\u0000${job.level}`;
        if (!latest.has(key)) latest.set(key, { machine, level: job.level, ok, finishedAt: job.finishedAt });
      }
    }
    return [...latest.values()];
  }

  private finishedJobs(): FinishedJob[] {
    // The table belongs to the verifier, which creates it; before that there is nothing to report.
    const exists = this.catalog.db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'verifications'")
      .get();
    if (!exists) return [];
    return this.catalog.db
      .prepare(
        `SELECT id, level, finished_at AS finishedAt FROM verifications WHERE state = 'done' AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT ${JOBS_CONSIDERED}`,
      )
      .all() as FinishedJob[];
  }

  /** Each machine of the job's report: ok only if every image of it verified ok. */
  private async machineResults(jobId: string): Promise<Map<string, boolean>> {
    const cached = this.perJob.get(jobId);
    if (cached) return cached;
    const machines = new Map<string, boolean>();
    const images = await this.reportImages(jobId);
    if (images === null) return machines; // not stored (a full repository): tried again next scrape
    for (const image of images)
      machines.set(image.machine, (machines.get(image.machine) ?? true) && image.result === 'ok');
    if (this.perJob.size >= JOBS_CACHED) this.perJob.delete(this.perJob.keys().next().value!);
    this.perJob.set(jobId, machines);
    return machines;
  }

  private async reportImages(jobId: string): Promise<ImageVerification[] | null> {
    try {
      const signed = JSON.parse(
        (await this.store.get(reportKey(jobId))).toString('utf8'),
      ) as SignedDocument<VerificationReport>;
      return Array.isArray(signed.report?.images) ? signed.report.images : [];
    } catch {
      return null;
    }
  }
}
