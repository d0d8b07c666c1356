// Watches what should happen without anyone watching: each agent's heartbeats, each
// scheduled run within its window, the outcome of every run, and the repository's
// free space. Conditions become incidents (incidents.ts); the notifier announces them.
import type { Logger } from '../../src/core/log.js';
import { formatBytes } from '../../src/core/units.js';
import { Schedule } from '../../src/core/schedule.js';
import type { ServerConfig } from '../config.js';
import type { Policies } from '../policies.js';
import type { Repository } from '../repository.js';
import type { RunRecord, Runs } from '../runs.js';
import type { Incidents } from './incidents.js';

/** An agent is silent when its last heartbeat is older than the configured timeout. */
export function agentIsSilent(lastHeartbeatAt: number, now: number, config: ServerConfig): boolean {
  return now - lastHeartbeatAt > config.monitoring.heartbeatTimeoutSeconds * 1000;
}

function when(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class Monitor {
  constructor(
    private readonly repository: Repository,
    private readonly runs: Runs,
    private readonly policies: Policies,
    private readonly incidents: Incidents,
    private readonly config: ServerConfig,
    private readonly log: Logger,
  ) {
    runs.onFinished((run) => this.runFinished(run));
  }

  private runFinished(run: RunRecord): void {
    if (run.state === 'ok') {
      const what = `run ${run.id} finished at ${when(run.finishedAt ?? this.repository.clock.now())}${run.image ? ` with image ${run.image}` : ''}`;
      this.incidents.resolve('run-failed', run.machine, `the next run succeeded (${what})`);
      this.incidents.resolve('missed-run', run.machine, `a run succeeded again (${what})`);
      return;
    }
    this.incidents.raise(
      'run-failed',
      run.machine,
      `The image run of ${run.machine} that started ${when(run.startedAt)} failed: ${run.error ?? 'no reason given'}`,
      {
        run: run.id,
        error: run.error,
        disks: run.disks,
        attempts: run.attempts,
        startedAt: when(run.startedAt),
        finishedAt: run.finishedAt === null ? null : when(run.finishedAt),
      },
      { announceAgain: true },
    );
  }

  /** One look at everything; the maintenance loop calls this every few seconds. */
  async check(): Promise<void> {
    const now = this.repository.clock.now();
    const silentMs = this.config.monitoring.heartbeatTimeoutSeconds * 1000;
    this.runs.abandonStale(now - silentMs);

    for (const agent of this.runs.agents()) {
      if (agentIsSilent(agent.lastHeartbeatAt, now, this.config)) {
        this.incidents.raise(
          'agent-silent',
          agent.machine,
          `The backup agent of ${agent.machine} has not been heard from since ${when(agent.lastHeartbeatAt)}`,
          { lastHeartbeatAt: when(agent.lastHeartbeatAt), hostname: agent.hostname },
        );
      } else {
        this.incidents.resolve(
          'agent-silent',
          agent.machine,
          `the agent is back (heartbeat at ${when(agent.lastHeartbeatAt)})`,
        );
      }
      this.checkSchedule(agent.machine, agent.firstSeenAt, now);
    }

    try {
      const free = await this.repository.store.freeBytes();
      const minimum = this.config.monitoring.minFreeBytes;
      if (free !== null && free < minimum) {
        this.incidents.raise(
          'low-space',
          'repository',
          `The repository has ${formatBytes(free)} free, less than the ${formatBytes(minimum)} configured`,
          { freeBytes: free, minFreeBytes: minimum, store: this.repository.store.description },
        );
      } else if (free !== null) {
        this.incidents.resolve('low-space', 'repository', `${formatBytes(free)} free again`);
      }
    } catch (error) {
      this.log.warn({ error: (error as Error).message }, 'cannot read the repository free space');
    }

    this.incidents.remind(this.config.notifications.repeatSeconds * 1000);
  }

  /** Did the latest occurrence whose window has closed get its run? */
  private checkSchedule(machine: string, agentSince: number, now: number): void {
    const policy = this.policies.effective(machine);
    if (!policy.enabled) {
      this.incidents.resolve('missed-run', machine, 'its schedule was disabled');
      return;
    }
    const windowMs = policy.windowSeconds * 1000;
    let occurrence: number | null;
    try {
      occurrence = new Schedule(policy.schedule, policy.timezone).previous(now - windowMs);
    } catch (error) {
      this.log.error({ machine, error: (error as Error).message }, 'cannot evaluate the schedule of a machine');
      return;
    }
    // Occurrences before the agent existed or before the policy last changed do not count.
    if (occurrence === null || occurrence < Math.max(agentSince, this.policies.changedAt(machine))) return;
    // A machine imaged successfully since then has recovered from that miss.
    const lastOk = this.runs.lastRun(machine, 'ok');
    if (lastOk && lastOk.startedAt >= occurrence) return;
    if (this.runs.runFor(machine, occurrence, occurrence, occurrence + windowMs)) return;
    const open = this.incidents.openIncident('missed-run', machine);
    if (open && open.detail.scheduledFor === when(occurrence)) return;
    this.incidents.raise(
      'missed-run',
      machine,
      `No image run of ${machine} started for its scheduled time ${when(occurrence)} (schedule "${policy.schedule}" ${policy.timezone}, window ${Math.round(policy.windowSeconds / 60)} min)`,
      {
        scheduledFor: when(occurrence),
        windowEnds: when(occurrence + windowMs),
        schedule: policy.schedule,
        timezone: policy.timezone,
      },
      { occurrence: true },
    );
  }
}
