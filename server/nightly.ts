// The parts that keep images coming without anyone watching, assembled in one place:
// policies, run reports, incidents and their notifications, retention, garbage
// collection, metrics and the maintenance loop that drives them.
import type { Logger } from '../src/core/log.js';
import type { ServerConfig } from './config.js';
import { GarbageCollector } from './jobs/gc.js';
import { Maintenance } from './jobs/maintenance.js';
import { Pruner } from './jobs/prune.js';
import { Incidents } from './monitoring/incidents.js';
import { Metrics } from './monitoring/metrics.js';
import { Monitor } from './monitoring/monitor.js';
import { incidentNotification } from './notify/message.js';
import { Notifier } from './notify/notifier.js';
import { Policies } from './policies.js';
import type { Repository } from './repository.js';
import { Runs } from './runs.js';

export class Nightly {
  readonly policies: Policies;
  readonly runs: Runs;
  readonly incidents: Incidents;
  readonly notifier: Notifier;
  readonly monitor: Monitor;
  readonly pruner: Pruner;
  readonly gc: GarbageCollector;
  readonly metrics: Metrics;
  readonly maintenance: Maintenance;

  constructor(repository: Repository, config: ServerConfig, log: Logger) {
    const { catalog, clock } = repository;
    this.policies = new Policies(catalog, config.timezone);
    this.runs = new Runs(catalog);
    this.incidents = new Incidents(catalog);
    this.notifier = new Notifier(catalog, config, log);
    this.incidents.onEvent((incident, event) => {
      log.warn(
        { incident: incident.id, kind: incident.kind, subject: incident.subject, event, summary: incident.summary },
        `incident ${event}`,
      );
      this.notifier.enqueue(incidentNotification(incident, event, clock.now()));
    });
    this.monitor = new Monitor(repository, this.runs, this.policies, this.incidents, config, log);
    this.pruner = new Pruner(repository, this.policies, log);
    this.gc = new GarbageCollector(repository, config.retention.gcGraceSeconds, log);
    this.metrics = new Metrics(repository, this.runs, this.incidents, this.gc, this.pruner);
    this.maintenance = new Maintenance(
      repository,
      {
        monitor: this.monitor,
        notifier: this.notifier,
        pruner: this.pruner,
        gc: this.gc,
        runs: this.runs,
        incidents: this.incidents,
      },
      config,
      log,
    );
  }

  start(): void {
    this.maintenance.start();
  }

  async stop(): Promise<void> {
    await this.maintenance.stop();
    await this.gc.idle().catch(() => undefined);
    await this.notifier.close();
  }
}
