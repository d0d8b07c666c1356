// The agent (`b365 agent run`): follows its machine's policy from the server, images
// the disks at each scheduled time (plus a random spread), sends heartbeats and a
// report for every run. It judges time by an injectable clock checked every tick, not
// by timers, so each occurrence fires once even when the clock jumps. The Agent wires
// its collaborators (policy, schedule, runs, report delivery) and drives their ticks.
import os from 'node:os';
import { abortableSleep } from '../core/backoff.js';
import { AuthError, UnavailableError, UntrustedServerError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { VERSION } from '../core/version.js';
import type { RunReport } from '../format/run-report.js';
import { AgentApi } from './api.js';
import { ReportOutbox } from './outbox.js';
import { PolicySource, retryBackoff } from './policy-source.js';
import { ReportDelivery } from './report-delivery.js';
import { type AgentConnection, RunExecutor } from './run-executor.js';
import { ScheduleTracker } from './schedule-tracker.js';
import { AgentStateFiles } from './state-files.js';

export interface AgentOptions extends AgentConnection {
  /** How often (real milliseconds) the agent looks at its clock. */
  tickMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class Agent {
  private readonly api: AgentApi;
  private readonly policy: PolicySource;
  private readonly schedule: ScheduleTracker;
  private readonly delivery: ReportDelivery;
  private readonly runs: RunExecutor;
  private readonly tickMs: number;
  private readonly stopController = new AbortController();
  private lastHeartbeatAt = Number.NEGATIVE_INFINITY;
  private resumeChecked = false;

  constructor(private readonly options: AgentOptions) {
    const { clock, log } = options;
    this.api = new AgentApi(options.server, options.token, log, options.fingerprint);
    this.tickMs = options.tickMs ?? 1000;
    const files = new AgentStateFiles(options.stateDirectory);
    this.policy = new PolicySource(this.api, files, clock, log);
    this.schedule = new ScheduleTracker(files, clock, log);
    const retry = () => retryBackoff(this.policy.settings);
    this.delivery = new ReportDelivery({
      outbox: new ReportOutbox(options.stateDirectory),
      send: (report) => this.api.putReport(report),
      clock,
      log,
      backoff: retry,
    });
    this.runs = new RunExecutor({
      ...options,
      server: this.api.server,
      signal: this.stopController.signal,
      tickMs: this.tickMs,
      delivery: this.delivery,
      retry,
    });
  }

  private get log(): Logger {
    return this.options.log;
  }

  /** Run until stop(): the daemon. */
  async run(): Promise<void> {
    await this.schedule.load();
    const cached = await this.policy.loadCached();
    if (cached) await this.schedule.planFromStart(cached.policy);
    const { fingerprint, stateDirectory } = this.options;
    this.log.info({ server: this.api.server, fingerprint: fingerprint ?? null, stateDirectory }, 'agent started');
    while (!this.stopController.signal.aborted) {
      try {
        await this.tick();
      } catch (error) {
        this.log.error({ error: errorMessage(error) }, 'agent tick failed');
      }
      await abortableSleep(this.tickMs, this.stopController.signal);
    }
    await this.runs.settled();
    await this.delivery.deliver().catch(() => undefined);
    await this.api.close();
    this.log.info('agent stopped');
  }

  /** Stop the loop; a run in progress is interrupted and resumed at the next start. */
  stop(): void {
    this.stopController.abort(new Error('agent stopping'));
  }

  /** One run now, outside the schedule (`b365 agent run --once`). */
  async runOnce(): Promise<RunReport | null> {
    await this.schedule.load();
    await this.refreshPolicy();
    const answer = this.policy.answer;
    const failure = this.policy.lastError;
    // A server that is not trusted or refuses the token says so; waiting does not change that.
    if (!answer && (failure instanceof UntrustedServerError || failure instanceof AuthError)) throw failure;
    if (!answer) throw new UnavailableError(`cannot get this machine's policy from ${this.api.server}`);
    const report = await this.runs.start(answer, 'manual', null);
    await this.delivery.flush(5, 1000);
    await this.api.close();
    return report;
  }

  private async tick(): Promise<void> {
    const now = this.options.clock.now();
    if (this.policy.due(now)) await this.refreshPolicy();
    if (now - this.lastHeartbeatAt >= this.policy.settings.heartbeatSeconds * 1000) await this.heartbeat();
    this.delivery.deliverIfDue(now);
    const answer = this.policy.answer;
    if (!answer) return;
    if (!this.resumeChecked) {
      this.resumeChecked = true;
      await this.runs.resumeInterrupted(answer);
    }
    const occurrence = await this.schedule.takeDue(answer.policy, this.options.clock.now());
    if (occurrence !== null) void this.runs.start(answer, 'schedule', occurrence);
  }

  private async refreshPolicy(): Promise<void> {
    const change = await this.policy.refresh();
    const answer = this.policy.answer;
    if (!change || !answer) return;
    if (change.first) await this.schedule.planFromStart(answer.policy);
    else if (change.changed) this.schedule.planNext(answer.policy, this.options.clock.now());
    if (!change.changed && !change.firstFetch) return;
    const { schedule, timezone, enabled } = answer.policy;
    const next = this.schedule.next;
    this.log.info(
      { machine: answer.machine, schedule, timezone, enabled, next: next ? iso(next.occurrence) : null },
      'policy loaded',
    );
  }

  private async heartbeat(): Promise<void> {
    this.lastHeartbeatAt = this.options.clock.now();
    try {
      const answer = await this.api.heartbeat(this.heartbeatBody());
      if (this.policy.answer && answer.policyChangedAt !== this.policy.answer.policyChangedAt)
        await this.refreshPolicy();
    } catch (error) {
      this.log.warn({ error: errorMessage(error) }, 'heartbeat not delivered');
    }
  }

  private heartbeatBody() {
    const current = this.runs.current;
    const next = this.schedule.next;
    const waiting = current?.progress?.stage === 'waiting to retry';
    return {
      hostname: os.hostname(),
      version: VERSION,
      state: current ? (waiting ? 'waiting-to-retry' : 'running') : 'idle',
      nextRunAt: next ? iso(next.due) : null,
      currentRun: current?.id ?? null,
    };
  }
}
