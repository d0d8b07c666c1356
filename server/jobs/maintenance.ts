// The server's own schedule: every few seconds it checks for incidents and delivers
// notifications, and it starts prune, garbage collection and the daily summary when
// their cron time has come. Due times are judged by the server's clock, not by timers,
// so a clock moved forward (tests, a suspended host) still runs each job once.
import type { Logger } from '../../src/core/log.js';
import { Schedule } from '../../src/core/schedule.js';
import type { ServerConfig } from '../config.js';
import type { Incidents } from '../monitoring/incidents.js';
import type { Monitor } from '../monitoring/monitor.js';
import { summaryNotification } from '../notify/message.js';
import type { Notifier } from '../notify/notifier.js';
import type { Repository } from '../repository.js';
import type { Runs } from '../runs.js';
import type { GarbageCollector } from './gc.js';
import type { Pruner } from './prune.js';

interface ScheduledJob {
  name: string;
  schedule: Schedule;
  run(): Promise<void>;
}

export class Maintenance {
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private readonly jobs: ScheduledJob[] = [];

  constructor(
    private readonly repository: Repository,
    private readonly parts: {
      monitor: Monitor;
      notifier: Notifier;
      pruner: Pruner;
      gc: GarbageCollector;
      runs: Runs;
      incidents: Incidents;
    },
    private readonly config: ServerConfig,
    private readonly log: Logger,
  ) {
    const zone = config.timezone;
    const { retention, notifications } = config;
    if (retention.pruneSchedule) {
      this.jobs.push({
        name: 'prune',
        schedule: new Schedule(retention.pruneSchedule, zone),
        run: async () => {
          await parts.pruner.run({});
        },
      });
    }
    if (retention.gcSchedule) {
      this.jobs.push({
        name: 'gc',
        schedule: new Schedule(retention.gcSchedule, zone),
        run: async () => {
          // Runs on its own: monitoring goes on while it sweeps.
          parts.gc.begin({ dryRun: false, graceSeconds: config.retention.gcGraceSeconds });
        },
      });
    }
    if (notifications.summarySchedule && parts.notifier.configured) {
      this.jobs.push({
        name: 'summary',
        schedule: new Schedule(notifications.summarySchedule, zone),
        run: () => this.sendSummary(),
      });
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.config.monitoring.checkEverySeconds * 1000);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
  }

  /** One pass; overlapping calls share it. */
  tick(): Promise<void> {
    this.ticking ??= this.pass().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async pass(): Promise<void> {
    const { catalog, clock } = this.repository;
    try {
      await this.parts.monitor.check();
    } catch (error) {
      this.log.error({ err: error }, 'monitoring check failed');
    }
    const now = clock.now();
    for (const job of this.jobs) {
      const key = `schedule.${job.name}.last`;
      const last = Number(catalog.getMeta(key) ?? Number.NaN);
      if (Number.isNaN(last)) {
        // First start: the schedule counts from now, nothing is run for the past.
        catalog.setMeta(key, String(now));
        continue;
      }
      const due = job.schedule.next(last);
      if (due === null || due > now) continue;
      catalog.setMeta(key, String(now));
      this.log.info({ job: job.name, due: new Date(due).toISOString() }, 'scheduled job starts');
      try {
        await job.run();
      } catch (error) {
        this.log.error({ job: job.name, err: error }, 'scheduled job failed');
      }
    }
    try {
      await this.parts.notifier.dispatch();
    } catch (error) {
      this.log.error({ err: error }, 'notification delivery failed');
    }
  }

  private async sendSummary(): Promise<void> {
    const { catalog, clock, store } = this.repository;
    const now = clock.now();
    const since = now - 86400_000;
    const byMachine = new Map<string, { machine: string; ok: number; failed: number; lastImage: string | null }>();
    for (const run of this.parts.runs.query({ since, limit: 10000 })) {
      const row = byMachine.get(run.machine) ?? { machine: run.machine, ok: 0, failed: 0, lastImage: null };
      if (run.state === 'ok') {
        row.ok++;
        row.lastImage ??= run.image;
      } else if (run.state === 'failed') row.failed++;
      byMachine.set(run.machine, row);
    }
    const stored = (
      catalog.db.prepare('SELECT COALESCE(SUM(stored_size), 0) AS bytes FROM objects').get() as { bytes: number }
    ).bytes;
    const images = (catalog.db.prepare('SELECT COUNT(*) AS count FROM images').get() as { count: number }).count;
    this.parts.notifier.enqueue(
      summaryNotification({
        since,
        now,
        runs: [...byMachine.values()].sort((a, b) => a.machine.localeCompare(b.machine)),
        openIncidents: this.parts.incidents.list({ state: 'open' }),
        images,
        storedBytes: stored,
        freeBytes: await store.freeBytes().catch(() => null),
      }),
    );
  }
}
