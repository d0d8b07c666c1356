// The agent (`b365 agent run`): follows its machine's policy from the server, images
// the disks at each scheduled time (plus a random spread), sends heartbeats and a
// report for every run. It judges time by an injectable clock checked every tick, not
// by timers, so each occurrence fires once even when the clock jumps. A run that cannot
// reach the server is retried with backoff until its window closes, as one report; a
// report that cannot be delivered waits in the outbox. A lock keeps runs from overlapping.
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../core/clock.js';
import {
  AuthError,
  RepositoryFullError,
  UnavailableError,
  UntrustedServerError,
  UserError,
  errorMessage,
} from '../core/errors.js';
import type { RunReport, RunTrigger } from '../format/run-report.js';
import type { Logger } from '../core/log.js';
import { Schedule } from '../core/schedule.js';
import { VERSION } from '../core/version.js';
import { AgentApi, type AgentSettings, type PolicyAnswer } from './api.js';
import { imageJob } from './job.js';
import { tryLock } from './lock.js';
import { ReportOutbox } from './outbox.js';

export interface AgentOptions {
  server: string;
  token: string;
  /** The server's pinned certificate fingerprint, if any. */
  fingerprint?: string;
  stateDirectory: string;
  clock: Clock;
  log: Logger;
  /** How often (real milliseconds) the agent looks at its clock. */
  tickMs?: number;
}

interface AgentState {
  /** The latest occurrence of the schedule that was run or deliberately passed over. */
  lastScheduledFor: number | null;
}

const DEFAULT_SETTINGS: AgentSettings = { heartbeatSeconds: 300, retryInitialSeconds: 60, retryMaxSeconds: 1800 };
const POLICY_REFRESH_MS = 3600_000;
const PROGRESS_EVERY_MS = 5000;

const iso = (ms: number) => new Date(ms).toISOString();

export class Agent {
  private readonly api: AgentApi;
  private readonly outbox: ReportOutbox;
  private readonly tickMs: number;
  private answer: PolicyAnswer | null = null;
  private policyCheckedAt = Number.NEGATIVE_INFINITY;
  private policyRetryAt = 0;
  private policyFailures = 0;
  /** Why the last policy fetch failed, if it did. */
  private policyError: unknown = null;
  private state: AgentState = { lastScheduledFor: null };
  private next: { occurrence: number; due: number } | null = null;
  private lastHeartbeatAt = Number.NEGATIVE_INFINITY;
  private delivery = { retryAt: 0, failures: 0 };
  private delivering: Promise<void> | null = null;
  /** What the server last accepted of each open report, so an unchanged one is not sent again. */
  private readonly delivered = new Map<string, string>();
  private resumeChecked = false;
  private current: { report: RunReport; done: Promise<RunReport | null> } | null = null;
  private readonly stopController = new AbortController();

  constructor(private readonly options: AgentOptions) {
    this.api = new AgentApi(options.server, options.token, options.log, options.fingerprint);
    this.outbox = new ReportOutbox(options.stateDirectory);
    this.tickMs = options.tickMs ?? 1000;
  }

  private get log(): Logger {
    return this.options.log;
  }

  private now(): number {
    return this.options.clock.now();
  }

  private get settings(): AgentSettings {
    return this.answer?.agent ?? DEFAULT_SETTINGS;
  }

  private get lockFile(): string {
    return path.join(this.options.stateDirectory, 'agent.lock');
  }

  private file(name: string): string {
    return path.join(this.options.stateDirectory, name);
  }

  private async writeJson(name: string, value: unknown): Promise<void> {
    await fs.mkdir(this.options.stateDirectory, { recursive: true, mode: 0o700 });
    const target = this.file(name);
    const temporary = `${target}.${randomBytes(4).toString('hex')}.tmp`;
    await fs.writeFile(temporary, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
    await fs.rename(temporary, target);
  }

  private async readJson<T>(name: string): Promise<T | null> {
    try {
      return JSON.parse(await fs.readFile(this.file(name), 'utf8')) as T;
    } catch {
      return null;
    }
  }

  /** Run until stop(): the daemon. */
  async run(): Promise<void> {
    this.state = (await this.readJson<AgentState>('agent-state.json')) ?? { lastScheduledFor: null };
    this.answer = await this.readJson<PolicyAnswer>('policy.json');
    if (this.answer) this.planFromStart();
    this.log.info(
      {
        server: this.api.server,
        fingerprint: this.options.fingerprint ?? null,
        stateDirectory: this.options.stateDirectory,
      },
      'agent started',
    );
    while (!this.stopController.signal.aborted) {
      try {
        await this.tick();
      } catch (error) {
        this.log.error({ error: errorMessage(error) }, 'agent tick failed');
      }
      await sleep(this.tickMs, undefined, { signal: this.stopController.signal }).catch(() => undefined);
    }
    await this.current?.done.catch(() => undefined);
    await this.deliver().catch(() => undefined);
    await this.api.close();
    this.log.info('agent stopped');
  }

  /** Stop the loop; a run in progress is interrupted and resumed at the next start. */
  stop(): void {
    this.stopController.abort(new Error('agent stopping'));
  }

  /** One run now, outside the schedule (`b365 agent run --once`). */
  async runOnce(): Promise<RunReport | null> {
    this.state = (await this.readJson<AgentState>('agent-state.json')) ?? { lastScheduledFor: null };
    await this.refreshPolicy();
    // A server that is not trusted or refuses the token says so; waiting does not change that.
    if (!this.answer && (this.policyError instanceof UntrustedServerError || this.policyError instanceof AuthError))
      throw this.policyError;
    if (!this.answer) throw new UnavailableError(`cannot get this machine's policy from ${this.api.server}`);
    const report = await this.startRun('manual', null);
    for (let attempt = 0; attempt < 5 && (await this.outbox.pending()).length; attempt++) {
      await this.deliver();
      if ((await this.outbox.pending()).length) await sleep(1000);
    }
    await this.api.close();
    return report;
  }

  private async tick(): Promise<void> {
    const now = this.now();
    if ((!this.answer || now - this.policyCheckedAt >= POLICY_REFRESH_MS) && now >= this.policyRetryAt)
      await this.refreshPolicy();
    if (now - this.lastHeartbeatAt >= this.settings.heartbeatSeconds * 1000) await this.heartbeat();
    if (now >= this.delivery.retryAt && !this.delivering) void this.deliver();
    if (!this.answer) return;
    if (!this.resumeChecked) {
      this.resumeChecked = true;
      await this.resumeInterrupted();
    }
    this.checkSchedule(this.now());
  }

  // --- policy and heartbeats -----------------------------------------------

  private async refreshPolicy(): Promise<void> {
    try {
      const answer = await this.api.policy();
      const changed =
        !this.answer ||
        JSON.stringify(answer.policy) !== JSON.stringify(this.answer.policy) ||
        answer.machine !== this.answer.machine;
      const first = !this.answer;
      const firstFetch = this.policyCheckedAt === Number.NEGATIVE_INFINITY;
      this.answer = answer;
      this.policyCheckedAt = this.now();
      this.policyFailures = 0;
      this.policyError = null;
      await this.writeJson('policy.json', answer);
      if (first) this.planFromStart();
      else if (changed) this.planNext(this.now());
      if (changed || firstFetch)
        this.log.info(
          {
            machine: answer.machine,
            schedule: answer.policy.schedule,
            timezone: answer.policy.timezone,
            enabled: answer.policy.enabled,
            next: this.next ? iso(this.next.occurrence) : null,
          },
          'policy loaded',
        );
    } catch (error) {
      this.policyError = error;
      if (error instanceof AuthError)
        this.log.error({ error: errorMessage(error) }, 'the server refuses this agent token');
      if (error instanceof UntrustedServerError)
        this.log.error({ error: errorMessage(error) }, 'the server is not trusted: nothing was sent to it');
      this.policyFailures++;
      this.policyRetryAt = this.now() + this.backoffMs(this.policyFailures);
      this.log.warn(
        { error: errorMessage(error), retryAt: iso(this.policyRetryAt), cached: this.answer !== null },
        'cannot fetch the policy',
      );
    }
  }

  private async heartbeat(): Promise<void> {
    this.lastHeartbeatAt = this.now();
    try {
      const answer = await this.api.heartbeat({
        hostname: os.hostname(),
        version: VERSION,
        state: this.current
          ? this.current.report.progress?.stage === 'waiting to retry'
            ? 'waiting-to-retry'
            : 'running'
          : 'idle',
        nextRunAt: this.next ? iso(this.next.due) : null,
        currentRun: this.current?.report.id ?? null,
      });
      if (this.answer && answer.policyChangedAt !== this.answer.policyChangedAt) await this.refreshPolicy();
    } catch (error) {
      this.log.warn({ error: errorMessage(error) }, 'heartbeat not delivered');
    }
  }

  private backoffMs(failures: number): number {
    const { retryInitialSeconds, retryMaxSeconds } = this.settings;
    return Math.min(retryMaxSeconds, retryInitialSeconds * 2 ** Math.max(0, failures - 1)) * 1000;
  }

  // --- the schedule ---------------------------------------------------------

  private schedule(): Schedule | null {
    const policy = this.answer?.policy;
    if (!policy || !policy.enabled) return null;
    return new Schedule(policy.schedule, policy.timezone);
  }

  /** After a (re)start: run an occurrence missed while the agent was down, if still in its window. */
  private planFromStart(): void {
    const schedule = this.schedule();
    const now = this.now();
    if (!schedule) {
      this.next = null;
      return;
    }
    const previous = schedule.previous(now);
    if (this.state.lastScheduledFor === null) {
      // A new agent starts with the next occurrence, not with one from before it existed.
      this.state.lastScheduledFor = previous;
      void this.writeJson('agent-state.json', this.state);
    } else if (
      previous !== null &&
      previous > this.state.lastScheduledFor &&
      now <= previous + this.answer!.policy.windowSeconds * 1000
    ) {
      this.next = { occurrence: previous, due: now };
      this.log.info({ scheduledFor: iso(previous) }, 'running an occurrence missed while the agent was down');
      return;
    }
    this.planNext(now);
  }

  private planNext(now: number): void {
    const schedule = this.schedule();
    const occurrence = schedule?.next(Math.max(now, this.state.lastScheduledFor ?? now)) ?? null;
    if (occurrence === null) {
      this.next = null;
      return;
    }
    const spreadMs = this.answer!.policy.spreadSeconds * 1000;
    this.next = { occurrence, due: occurrence + Math.floor(Math.random() * spreadMs) };
  }

  private checkSchedule(now: number): void {
    if (!this.next || now < this.next.due) return;
    const schedule = this.schedule();
    if (!schedule) {
      this.next = null;
      return;
    }
    // A clock that jumped may have passed several occurrences: only the latest counts.
    const occurrence = Math.max(this.next.occurrence, schedule.previous(now) ?? this.next.occurrence);
    this.state.lastScheduledFor = occurrence;
    void this.writeJson('agent-state.json', this.state);
    this.planNext(now);
    const windowMs = this.answer!.policy.windowSeconds * 1000;
    if (now > occurrence + windowMs) {
      this.log.warn(
        { scheduledFor: iso(occurrence) },
        'the window of this occurrence has passed; waiting for the next',
      );
      return;
    }
    void this.startRun('schedule', occurrence);
  }

  // --- runs -----------------------------------------------------------------

  private newReport(trigger: RunTrigger, scheduledFor: number | null): RunReport {
    return {
      id: randomUUID(),
      machine: this.answer!.machine,
      trigger,
      scheduledFor: scheduledFor === null ? null : iso(scheduledFor),
      state: 'running',
      startedAt: iso(this.now()),
      finishedAt: null,
      attempts: 0,
      disks: this.answer!.policy.disks,
      image: null,
      bytesRead: 0,
      bytesUploaded: 0,
      chunksNew: 0,
      chunksReused: 0,
      warnings: [],
      error: null,
      progress: null,
      agentVersion: VERSION,
      sentAt: iso(this.now()),
    };
  }

  /** Runs interrupted by a stop: resumed if their window is still open, else reported failed. */
  private async resumeInterrupted(): Promise<void> {
    for (const report of await this.outbox.pending()) {
      if (report.state !== 'running' || report.machine !== this.answer!.machine) continue;
      const windowEnd =
        report.scheduledFor === null
          ? Number.NEGATIVE_INFINITY
          : Date.parse(report.scheduledFor) + this.answer!.policy.windowSeconds * 1000;
      if (this.now() <= windowEnd) {
        this.log.info({ run: report.id }, 'resuming a run interrupted by a stop of the agent');
        void this.startRun(report.trigger, Date.parse(report.scheduledFor!), report);
      } else {
        Object.assign(report, {
          state: 'failed',
          finishedAt: iso(this.now()),
          error: report.error ?? 'the agent stopped during this run and could not resume it within its window',
          progress: null,
        });
        await this.outbox.save(report);
      }
    }
  }

  private startRun(trigger: RunTrigger, scheduledFor: number | null, resumed?: RunReport): Promise<RunReport | null> {
    const lock = tryLock(this.lockFile);
    if (!lock) {
      this.log.warn(
        { trigger, scheduledFor: scheduledFor === null ? null : iso(scheduledFor) },
        'another run is in progress; this trigger is skipped',
      );
      return Promise.resolve(null);
    }
    const report = resumed ?? this.newReport(trigger, scheduledFor);
    const done = this.execute(report).finally(() => {
      lock.release();
      this.current = null;
    });
    this.current = { report, done };
    return done;
  }

  private async execute(report: RunReport): Promise<RunReport | null> {
    const policy = this.answer!.policy;
    const windowEnd =
      (report.scheduledFor ? Date.parse(report.scheduledFor) : Date.parse(report.startedAt)) +
      policy.windowSeconds * 1000;
    this.log.info({ run: report.id, trigger: report.trigger, scheduledFor: report.scheduledFor }, 'run starts');
    let lastProgressSent = 0;
    for (;;) {
      report.attempts++;
      report.progress = { stage: 'starting', bytesDone: 0, bytesTotal: 0, bytesUploaded: 0 };
      await this.record(report);
      try {
        const result = await imageJob({
          server: this.api.server,
          token: this.options.token,
          fingerprint: this.options.fingerprint,
          machine: report.machine,
          policy,
          stateDirectory: this.options.stateDirectory,
          log: this.log,
          signal: this.stopController.signal,
          onDisks: (disks) => {
            report.disks = disks;
          },
          onProgress: (progress) => {
            report.progress = {
              stage: progress.stage,
              bytesDone: progress.bytesDone,
              bytesTotal: progress.bytesTotal,
              bytesUploaded: progress.bytesUploaded,
            };
            if (Date.now() - lastProgressSent >= PROGRESS_EVERY_MS) {
              lastProgressSent = Date.now();
              void this.record(report);
            }
          },
        });
        Object.assign(report, {
          state: 'ok',
          image: result.image,
          bytesRead: result.bytesRead,
          bytesUploaded: result.bytesUploaded,
          chunksNew: result.chunksUploaded,
          chunksReused: result.chunksReused,
          warnings: result.warnings,
          error: null,
          progress: null,
        });
        break;
      } catch (error) {
        if (this.stopController.signal.aborted) {
          // Left open in the outbox: the next start resumes it.
          report.error = null;
          await this.outbox.save(report);
          this.log.info({ run: report.id }, 'run interrupted by a stop of the agent');
          return null;
        }
        const message = errorMessage(error);
        const retryAt = this.now() + this.backoffMs(report.attempts);
        if (error instanceof UnavailableError && retryAt <= windowEnd) {
          report.error = `attempt ${report.attempts} failed: ${message}`;
          report.progress = { stage: 'waiting to retry', bytesDone: 0, bytesTotal: 0, bytesUploaded: 0 };
          await this.record(report);
          this.log.warn(
            { run: report.id, attempt: report.attempts, retryAt: iso(retryAt), error: message },
            'run could not reach the server; it will be retried',
          );
          await this.sleepUntil(retryAt);
          if (this.stopController.signal.aborted) {
            await this.outbox.save(report);
            return null;
          }
          continue;
        }
        Object.assign(report, { state: 'failed', error: message, progress: null });
        if (!(error instanceof UserError)) this.log.error({ run: report.id, err: error }, 'run failed unexpectedly');
        break;
      }
    }
    report.finishedAt = iso(this.now());
    await this.record(report);
    this.log.info({ run: report.id, state: report.state, image: report.image, error: report.error }, 'run finished');
    return report;
  }

  /** Wait on the agent's clock (which tests move), a tick at a time. */
  private async sleepUntil(time: number): Promise<void> {
    while (this.now() < time && !this.stopController.signal.aborted) {
      await sleep(Math.min(this.tickMs, Math.max(10, time - this.now())), undefined, {
        signal: this.stopController.signal,
      }).catch(() => undefined);
    }
  }

  /** Keep the report in the outbox and try to send it at once. */
  private async record(report: RunReport): Promise<void> {
    await this.outbox.save(report);
    this.delivery.retryAt = 0;
    void this.deliver();
  }

  // --- the outbox ------------------------------------------------------------

  private deliver(): Promise<void> {
    this.delivering ??= this.deliverPending().finally(() => {
      this.delivering = null;
    });
    return this.delivering;
  }

  private async deliverPending(): Promise<void> {
    for (const report of await this.outbox.pending()) {
      const final = report.state !== 'running';
      const content = JSON.stringify({ ...report, sentAt: null });
      if (!final && this.delivered.get(report.id) === content) continue;
      try {
        await this.api.putReport({ ...report, sentAt: iso(this.now()) });
        if (final) {
          await this.outbox.remove(report.id);
          this.delivered.delete(report.id);
        } else this.delivered.set(report.id, content);
        this.delivery = { retryAt: 0, failures: 0 };
      } catch (error) {
        // A full repository takes it once space is freed: it waits like an outage.
        if (
          error instanceof UserError &&
          !(error instanceof UnavailableError) &&
          !(error instanceof AuthError) &&
          !(error instanceof RepositoryFullError)
        ) {
          // The server will never take this one (it says why); keeping it would block the rest.
          this.log.error(
            { run: report.id, error: errorMessage(error) },
            'the server refused a run report; it is dropped',
          );
          await this.outbox.remove(report.id);
          continue;
        }
        this.delivery.failures++;
        this.delivery.retryAt = this.now() + this.backoffMs(this.delivery.failures);
        this.log.warn(
          { run: report.id, error: errorMessage(error), retryAt: iso(this.delivery.retryAt) },
          'run report not delivered; it waits in the outbox',
        );
        return;
      }
    }
  }
}
