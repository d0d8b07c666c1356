// Prometheus metrics (/metrics, text format). State the catalog holds (sizes, latest
// images, heartbeats) is read from it at scrape time, so it survives restarts; events
// (runs finishing, requests, objects served) are counted in memory. Counters only ever
// grow within one process; moments are exposed as *_timestamp_seconds, never as ages.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Incidents } from './incidents.js';
import { VerificationResults } from './verification-results.js';
import type { GarbageCollector } from '../jobs/gc.js';
import type { Pruner } from '../jobs/prune.js';
import type { Repository } from '../repository.js';
import type { RunRecord, Runs } from '../runs.js';

type Registers = Registry[];

const RUN_RESULTS = ['ok', 'failed'] as const;
const RUN_KINDS = ['schedule', 'manual'] as const;
const INCIDENT_KINDS = ['run-failed', 'missed-run', 'agent-silent', 'low-space'];
/** Seconds: API calls take milliseconds, chunk uploads and file downloads up to minutes. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Seconds: an incremental run takes minutes, a first full image of a large disk hours. */
const RUN_BUCKETS = [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400];

const seconds = (milliseconds: number): number => milliseconds / 1000;

export class Metrics {
  readonly registry = new Registry();
  private readonly registers: Registers = [this.registry];
  private readonly chunksServed: Counter;
  private readonly bytesServed: Counter;
  private readonly requestDuration: Histogram;
  private readonly authFailures: Counter;

  constructor(repository: Repository, runs: Runs, incidents: Incidents, gc: GarbageCollector, pruner: Pruner) {
    collectDefaultMetrics({ register: this.registry });
    this.runMetrics(runs);
    this.repositoryMetrics(repository);
    this.machineTimestamps(repository, runs);
    this.verificationMetrics(new VerificationResults(repository.catalog, repository.store));
    this.maintenanceMetrics(incidents, gc, pruner);
    this.chunksServed = new Counter({
      name: 'b365_served_objects_total',
      help: 'Chunks and indexes served to readers (restores, verifications by clients)',
      labelNames: ['kind'],
      registers: this.registers,
    });
    this.bytesServed = new Counter({
      name: 'b365_served_bytes_total',
      help: 'Bytes of chunks and indexes served to readers',
      labelNames: ['kind'],
      registers: this.registers,
    });
    for (const kind of ['chunk', 'index']) {
      this.chunksServed.inc({ kind }, 0);
      this.bytesServed.inc({ kind }, 0);
    }
    this.authFailures = new Counter({
      name: 'b365_auth_failures_total',
      help: 'Requests refused for an unknown, revoked or expired token or a wrong restore code',
      labelNames: ['kind'],
      registers: this.registers,
    });
    for (const kind of ['token', 'restore_code']) this.authFailures.inc({ kind }, 0);
    this.requestDuration = new Histogram({
      name: 'b365_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern (as in the OpenAPI document) and status',
      labelNames: ['method', 'route', 'status'],
      buckets: REQUEST_BUCKETS,
      registers: this.registers,
    });
  }

  /** A refused token or restore code (server/auth-failures.ts). */
  authFailed(kind: 'token' | 'restore_code'): void {
    this.authFailures.inc({ kind });
  }

  served(kind: 'chunk' | 'index', bytes: number): void {
    this.chunksServed.inc({ kind });
    this.bytesServed.inc({ kind }, bytes);
  }

  /** `route` must be a pattern (`/api/v1/images/{id}`), never the raw path: it bounds the label's values. */
  requestServed(method: string, route: string, status: number, durationSeconds: number): void {
    this.requestDuration.observe({ method, route, status: String(status) }, durationSeconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Finished runs counted as they finish, starting from what the catalog already holds:
   * a run the server closed as failed and its agent later reported ok counts in both,
   * so neither counter ever goes down.
   */
  private runMetrics(runs: Runs): void {
    const registers = this.registers;
    const finished = new Counter({
      name: 'b365_runs_total',
      help: 'Agent image runs that finished, by result',
      labelNames: ['result'],
      registers,
    });
    const uploaded = new Counter({
      name: 'b365_run_uploaded_bytes_total',
      help: 'Bytes uploaded by finished agent runs, as their reports say',
      registers,
    });
    const duration = new Histogram({
      name: 'b365_run_duration_seconds',
      help: 'How long agent runs took, by kind (schedule, manual) and result, observed as their final reports arrive',
      labelNames: ['kind', 'result'],
      buckets: RUN_BUCKETS,
      registers,
    });
    for (const result of RUN_RESULTS) finished.inc({ result }, 0);
    for (const kind of RUN_KINDS) for (const result of RUN_RESULTS) duration.zero({ kind, result });
    for (const row of runs.counts()) {
      if (row.state === 'running') continue;
      finished.inc({ result: row.state }, row.count);
      uploaded.inc(row.bytesUploaded);
    }
    runs.onFinished((run: RunRecord) => {
      finished.inc({ result: run.state });
      uploaded.inc(run.bytesUploaded);
      if (run.finishedAt !== null)
        duration.observe(
          { kind: run.trigger, result: run.state },
          Math.max(0, seconds(run.finishedAt - run.startedAt)),
        );
    });
    new Gauge({
      name: 'b365_runs_running',
      help: 'Agent image runs in progress',
      registers,
      collect() {
        this.set(runs.counts().find((row) => row.state === 'running')?.count ?? 0);
      },
    });
  }

  private repositoryMetrics(repository: Repository): void {
    const { catalog, store } = repository;
    const registers = this.registers;
    new Gauge({
      name: 'b365_repository_stored_bytes',
      help: 'Bytes the stored chunks and indexes take (compressed)',
      registers,
      collect() {
        this.set(
          (catalog.db.prepare('SELECT COALESCE(SUM(stored_size), 0) AS bytes FROM objects').get() as { bytes: number })
            .bytes,
        );
      },
    });
    new Gauge({
      name: 'b365_repository_objects',
      help: 'Chunks and indexes in the repository',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const row of catalog.db.prepare('SELECT kind, COUNT(*) AS count FROM objects GROUP BY kind').all() as {
          kind: string;
          count: number;
        }[])
          this.set({ kind: row.kind }, row.count);
      },
    });
    new Gauge({
      name: 'b365_repository_images',
      help: 'Images in the repository',
      registers,
      collect() {
        this.set((catalog.db.prepare('SELECT COUNT(*) AS count FROM images').get() as { count: number }).count);
      },
    });
    new Gauge({
      name: 'b365_repository_free_bytes',
      help: 'Free space where the repository is stored',
      registers,
      async collect() {
        const free = await store.freeBytes().catch(() => null);
        if (free !== null) this.set(free);
      },
    });
  }

  private machineTimestamps(repository: Repository, runs: Runs): void {
    const { catalog } = repository;
    const registers = this.registers;
    new Gauge({
      name: 'b365_last_successful_image_timestamp_seconds',
      help: 'When the newest healthy image of each machine was committed (unix seconds)',
      labelNames: ['machine'],
      registers,
      collect() {
        this.reset();
        const rows = catalog.db
          .prepare(
            "SELECT m.name AS machine, MAX(i.created_at) AS latest FROM images i JOIN machines m ON m.id = i.machine_id WHERE i.state = 'ok' GROUP BY m.name",
          )
          .all() as { machine: string; latest: number }[];
        for (const row of rows) this.set({ machine: row.machine }, seconds(row.latest));
      },
    });
    new Gauge({
      name: 'b365_agent_last_heartbeat_timestamp_seconds',
      help: 'When each agent last sent a heartbeat (unix seconds)',
      labelNames: ['machine'],
      registers,
      collect() {
        this.reset();
        for (const agent of runs.agents()) this.set({ machine: agent.machine }, seconds(agent.lastHeartbeatAt));
      },
    });
    new Gauge({
      name: 'b365_last_run_report_timestamp_seconds',
      help: 'When the newest run report of each machine arrived or changed (unix seconds)',
      labelNames: ['machine'],
      registers,
      collect() {
        this.reset();
        for (const row of catalog.db
          .prepare('SELECT machine, MAX(updated_at) AS latest FROM runs GROUP BY machine')
          .all() as { machine: string; latest: number }[]) {
          this.set({ machine: row.machine }, seconds(row.latest));
        }
      },
    });
  }

  private verificationMetrics(results: VerificationResults): void {
    const registers = this.registers;
    new Gauge({
      name: 'b365_verification_last_result',
      help: 'Result of the newest verification of each machine at each level: 1 every image verified ok, 0 one failed',
      labelNames: ['machine', 'level'],
      registers,
      async collect() {
        this.reset();
        for (const row of await results.latest()) this.set({ machine: row.machine, level: row.level }, row.ok ? 1 : 0);
      },
    });
    new Gauge({
      name: 'b365_verification_last_timestamp_seconds',
      help: 'When the newest verification of each machine at each level finished (unix seconds)',
      labelNames: ['machine', 'level'],
      registers,
      async collect() {
        this.reset();
        for (const row of await results.latest())
          this.set({ machine: row.machine, level: row.level }, seconds(row.finishedAt));
      },
    });
  }

  private maintenanceMetrics(incidents: Incidents, gc: GarbageCollector, pruner: Pruner): void {
    const registers = this.registers;
    new Gauge({
      name: 'b365_open_incidents',
      help: 'Open incidents by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const kind of INCIDENT_KINDS) this.set({ kind }, 0);
        for (const row of incidents.openCounts()) this.set({ kind: row.kind }, row.count);
      },
    });
    // Sums over the job history, which is never deleted: these only grow.
    new Counter({
      name: 'b365_gc_reclaimed_bytes_total',
      help: 'Bytes garbage collection has freed',
      registers,
      collect() {
        this.reset();
        this.inc(gc.totalReclaimed());
      },
    });
    new Counter({
      name: 'b365_pruned_images_total',
      help: 'Images removed by retention',
      registers,
      collect() {
        this.reset();
        this.inc(pruner.totalRemoved());
      },
    });
  }
}
