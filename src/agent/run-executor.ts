// One image run from trigger to final report: one run at a time (a lock in the state
// directory), attempts retried with backoff while the server cannot be reached and the
// run's window is open, every change of the run recorded for delivery as it happens.
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { backoffDelay, type BackoffPolicy, sleepUntil } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { UnavailableError, UserError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { VERSION } from '../core/version.js';
import type { Policy } from '../format/policy.js';
import type { RunProgress, RunReport, RunTrigger } from '../format/run-report.js';
import type { CaptureReport } from '../../imaging/capture/image.js';
import type { PolicyAnswer } from './api.js';
import { imageJob } from './job.js';
import { tryLock } from './lock.js';
import type { ReportDelivery } from './report-delivery.js';

/** Where an agent sends its images and keeps its state: what the agent and its runs share. */
export interface AgentConnection {
  server: string;
  token: string;
  /** The server's pinned certificate fingerprint, if any. */
  fingerprint?: string;
  stateDirectory: string;
  clock: Clock;
  log: Logger;
}

export interface RunExecutorOptions extends AgentConnection {
  /** Stops a run: it is left open in the outbox, to be resumed at the next start. */
  signal: AbortSignal;
  /** How often (real milliseconds) a wait looks at the clock. */
  tickMs: number;
  delivery: ReportDelivery;
  /** The wait between attempts, read at each failure. */
  retry: () => BackoffPolicy;
}

type AfterFailure = 'retry' | 'failed' | 'interrupted';

const PROGRESS_EVERY_MS = 5000;
const iso = (ms: number) => new Date(ms).toISOString();
const idle = (stage: string): RunProgress => ({ stage, bytesDone: 0, bytesTotal: 0, bytesUploaded: 0 });

function outcomeOf(result: CaptureReport): Partial<RunReport> {
  return {
    state: 'ok',
    image: result.image,
    bytesRead: result.bytesRead,
    bytesUploaded: result.bytesUploaded,
    chunksNew: result.chunksUploaded,
    chunksReused: result.chunksReused,
    warnings: result.warnings,
    error: null,
    progress: null,
  };
}

export class RunExecutor {
  private running: { report: RunReport; done: Promise<RunReport | null> } | null = null;

  constructor(private readonly options: RunExecutorOptions) {}

  private get log(): Logger {
    return this.options.log;
  }

  /** The report of the run in progress, if any. */
  get current(): RunReport | null {
    return this.running?.report ?? null;
  }

  /** Wait for the run in progress, if any, to end. */
  async settled(): Promise<void> {
    await this.running?.done.catch(() => undefined);
  }

  /** A fresh report for a run of this machine's policy. */
  newReport(answer: PolicyAnswer, trigger: RunTrigger, scheduledFor: number | null): RunReport {
    const now = iso(this.options.clock.now());
    return {
      id: randomUUID(),
      machine: answer.machine,
      trigger,
      scheduledFor: scheduledFor === null ? null : iso(scheduledFor),
      state: 'running',
      startedAt: now,
      finishedAt: null,
      attempts: 0,
      disks: answer.policy.disks,
      image: null,
      bytesRead: 0,
      bytesUploaded: 0,
      chunksNew: 0,
      chunksReused: 0,
      warnings: [],
      error: null,
      progress: null,
      agentVersion: VERSION,
      sentAt: now,
    };
  }

  /**
   * Start a run unless one holds the lock (then null at once). Resolves to its final
   * report, or null when a stop interrupted it.
   */
  start(answer: PolicyAnswer, trigger: RunTrigger, scheduledFor: number | null, resumed?: RunReport) {
    const lock = tryLock(path.join(this.options.stateDirectory, 'agent.lock'));
    if (!lock) {
      this.log.warn(
        { trigger, scheduledFor: scheduledFor === null ? null : iso(scheduledFor) },
        'another run is in progress; this trigger is skipped',
      );
      return Promise.resolve(null);
    }
    const report = resumed ?? this.newReport(answer, trigger, scheduledFor);
    const done = this.execute(report, answer.policy).finally(() => {
      lock.release();
      this.running = null;
    });
    this.running = { report, done };
    return done;
  }

  /** Runs interrupted by a stop: resumed if their window is still open, else reported failed. */
  async resumeInterrupted(answer: PolicyAnswer): Promise<void> {
    const now = this.options.clock.now();
    for (const report of await this.options.delivery.outbox.pending()) {
      if (report.state !== 'running' || report.machine !== answer.machine) continue;
      const windowEnd =
        report.scheduledFor === null
          ? Number.NEGATIVE_INFINITY
          : Date.parse(report.scheduledFor) + answer.policy.windowSeconds * 1000;
      if (now <= windowEnd) {
        this.log.info({ run: report.id }, 'resuming a run interrupted by a stop of the agent');
        void this.start(answer, report.trigger, Date.parse(report.scheduledFor!), report);
      } else {
        Object.assign(report, {
          state: 'failed',
          finishedAt: iso(now),
          error: report.error ?? 'the agent stopped during this run and could not resume it within its window',
          progress: null,
        });
        await this.options.delivery.outbox.save(report);
      }
    }
  }

  private async execute(report: RunReport, policy: Policy): Promise<RunReport | null> {
    const windowEnd =
      (report.scheduledFor ? Date.parse(report.scheduledFor) : Date.parse(report.startedAt)) +
      policy.windowSeconds * 1000;
    this.log.info({ run: report.id, trigger: report.trigger, scheduledFor: report.scheduledFor }, 'run starts');
    for (;;) {
      report.attempts++;
      report.progress = idle('starting');
      await this.options.delivery.record(report);
      try {
        Object.assign(report, outcomeOf(await this.attempt(report, policy)));
        break;
      } catch (error) {
        const next = await this.afterFailure(report, error, windowEnd);
        if (next === 'interrupted') return null;
        if (next === 'failed') break;
      }
    }
    report.finishedAt = iso(this.options.clock.now());
    await this.options.delivery.record(report);
    this.log.info({ run: report.id, state: report.state, image: report.image, error: report.error }, 'run finished');
    return report;
  }

  /** One capture of the policy's disks; progress is recorded every few seconds. */
  private attempt(report: RunReport, policy: Policy): Promise<CaptureReport> {
    let lastProgressSent = 0;
    return imageJob({
      server: this.options.server,
      token: this.options.token,
      fingerprint: this.options.fingerprint,
      machine: report.machine,
      policy,
      stateDirectory: this.options.stateDirectory,
      log: this.log,
      signal: this.options.signal,
      onDisks: (disks) => {
        report.disks = disks;
      },
      onProgress: ({ stage, bytesDone, bytesTotal, bytesUploaded }) => {
        report.progress = { stage, bytesDone, bytesTotal, bytesUploaded };
        if (Date.now() - lastProgressSent >= PROGRESS_EVERY_MS) {
          lastProgressSent = Date.now();
          void this.options.delivery.record(report);
        }
      },
    });
  }

  private async afterFailure(report: RunReport, error: unknown, windowEnd: number): Promise<AfterFailure> {
    if (this.options.signal.aborted) {
      // Left open in the outbox: the next start resumes it.
      report.error = null;
      await this.options.delivery.outbox.save(report);
      this.log.info({ run: report.id }, 'run interrupted by a stop of the agent');
      return 'interrupted';
    }
    const message = errorMessage(error);
    const retryAt = this.options.clock.now() + backoffDelay(this.options.retry(), report.attempts);
    if (error instanceof UnavailableError && retryAt <= windowEnd) return this.waitToRetry(report, message, retryAt);
    Object.assign(report, { state: 'failed', error: message, progress: null });
    if (!(error instanceof UserError)) this.log.error({ run: report.id, err: error }, 'run failed unexpectedly');
    return 'failed';
  }

  private async waitToRetry(report: RunReport, message: string, retryAt: number): Promise<AfterFailure> {
    report.error = `attempt ${report.attempts} failed: ${message}`;
    report.progress = idle('waiting to retry');
    await this.options.delivery.record(report);
    this.log.warn(
      { run: report.id, attempt: report.attempts, retryAt: iso(retryAt), error: message },
      'run could not reach the server; it will be retried',
    );
    const { clock, tickMs, signal } = this.options;
    if (await sleepUntil(clock, retryAt, { stepMs: tickMs, signal })) return 'retry';
    await this.options.delivery.outbox.save(report);
    return 'interrupted';
  }
}
