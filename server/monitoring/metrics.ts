// Prometheus metrics (/metrics, text format). Values that the catalog holds are read
// from it at scrape time, so they survive restarts; only what the server serves to
// readers is counted in memory. Times are the server's clock.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Incidents } from './incidents.js';
import type { GarbageCollector } from '../jobs/gc.js';
import type { Pruner } from '../jobs/prune.js';
import type { Repository } from '../repository.js';
import type { Runs } from '../runs.js';

export class Metrics {
  readonly registry = new Registry();
  private readonly chunksServed: Counter;
  private readonly bytesServed: Counter;
  private readonly authFailures: Counter;

  constructor(repository: Repository, runs: Runs, incidents: Incidents, gc: GarbageCollector, pruner: Pruner) {
    const registers = [this.registry];
    const { catalog, clock, store } = repository;
    collectDefaultMetrics({ register: this.registry, prefix: 'b365_server_' });

    new Counter({
      name: 'b365_runs_total',
      help: 'Agent image runs by result (running, ok, failed)',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        for (const result of ['ok', 'failed', 'running']) this.inc({ result }, 0);
        for (const row of runs.counts()) this.inc({ result: row.state }, row.count);
      },
    });
    new Counter({
      name: 'b365_run_uploaded_bytes_total',
      help: 'Bytes uploaded by agent runs, as their reports say',
      registers,
      collect() {
        this.reset();
        this.inc(runs.counts().reduce((sum, row) => sum + row.bytesUploaded, 0));
      },
    });
    new Gauge({
      name: 'b365_repository_stored_bytes',
      help: 'Bytes the stored chunks and indexes take (compressed)',
      registers,
      collect() {
        this.set((catalog.db.prepare('SELECT COALESCE(SUM(stored_size), 0) AS bytes FROM objects').get() as { bytes: number }).bytes);
      },
    });
    new Gauge({
      name: 'b365_repository_objects',
      help: 'Chunks and indexes in the repository',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const row of catalog.db.prepare('SELECT kind, COUNT(*) AS count FROM objects GROUP BY kind').all() as { kind: string; count: number }[]) this.set({ kind: row.kind }, row.count);
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
    new Gauge({
      name: 'b365_open_incidents',
      help: 'Open incidents by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const kind of ['run-failed', 'missed-run', 'agent-silent', 'low-space']) this.set({ kind }, 0);
        for (const row of incidents.openCounts()) this.set({ kind: row.kind }, row.count);
      },
    });
    new Gauge({
      name: 'b365_last_successful_image_age_seconds',
      help: 'Seconds since the newest healthy image of each machine was committed',
      labelNames: ['machine'],
      registers,
      collect() {
        this.reset();
        const now = clock.now();
        const rows = catalog.db
          .prepare("SELECT m.name AS machine, MAX(i.created_at) AS latest FROM images i JOIN machines m ON m.id = i.machine_id WHERE i.state = 'ok' GROUP BY m.name")
          .all() as { machine: string; latest: number }[];
        for (const row of rows) this.set({ machine: row.machine }, Math.max(0, (now - row.latest) / 1000));
      },
    });
    new Gauge({
      name: 'b365_agent_last_heartbeat_age_seconds',
      help: 'Seconds since each agent last sent a heartbeat',
      labelNames: ['machine'],
      registers,
      collect() {
        this.reset();
        const now = clock.now();
        for (const agent of runs.agents()) this.set({ machine: agent.machine }, Math.max(0, (now - agent.lastHeartbeatAt) / 1000));
      },
    });
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
    this.chunksServed = new Counter({ name: 'b365_served_objects_total', help: 'Chunks and indexes served to readers (restores, verifications by clients)', labelNames: ['kind'], registers });
    this.bytesServed = new Counter({ name: 'b365_served_bytes_total', help: 'Bytes of chunks and indexes served to readers', labelNames: ['kind'], registers });
    for (const kind of ['chunk', 'index']) {
      this.chunksServed.inc({ kind }, 0);
      this.bytesServed.inc({ kind }, 0);
    }
    this.authFailures = new Counter({ name: 'b365_auth_failures_total', help: 'Requests refused for an unknown, revoked or expired token or a wrong restore code', labelNames: ['kind'], registers });
    for (const kind of ['token', 'restore_code']) this.authFailures.inc({ kind }, 0);
  }

  /** A refused token or restore code (server/auth-failures.ts). */
  authFailed(kind: 'token' | 'restore_code'): void {
    this.authFailures.inc({ kind });
  }

  served(kind: 'chunk' | 'index', bytes: number): void {
    this.chunksServed.inc({ kind });
    this.bytesServed.inc({ kind }, bytes);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
