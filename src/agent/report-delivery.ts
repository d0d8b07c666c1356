// Run reports from the outbox to the server: every change of a run is saved first, then
// sent; while the server cannot take them they wait, retried with backoff, oldest first,
// and a final report leaves the outbox only once the server has it.
import { AuthError, RepositoryFullError, UnavailableError, UserError, errorMessage } from '../core/errors.js';
import { Backoff, type BackoffPolicy, abortableSleep } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { RunReport } from '../format/run-report.js';
import type { ReportOutbox } from './outbox.js';

export interface ReportDeliveryOptions {
  outbox: ReportOutbox;
  /** Hand one report to the server (the agent's PUT /runs/ID). */
  send(report: RunReport): Promise<unknown>;
  clock: Clock;
  log: Logger;
  backoff: () => BackoffPolicy;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class ReportDelivery {
  private readonly backoff: Backoff;
  private delivering: Promise<void> | null = null;
  /** What the server last accepted of each open report, so an unchanged one is not sent again. */
  private readonly delivered = new Map<string, string>();

  constructor(private readonly options: ReportDeliveryOptions) {
    this.backoff = new Backoff(options.backoff);
  }

  get outbox(): ReportOutbox {
    return this.options.outbox;
  }

  /** Keep the report in the outbox and try to send it at once. */
  async record(report: RunReport): Promise<void> {
    await this.options.outbox.save(report);
    this.backoff.retryNow();
    void this.deliver();
  }

  /** Start a delivery when the last failure's wait is over and none is under way. */
  deliverIfDue(now: number): void {
    if (this.backoff.due(now) && !this.delivering) void this.deliver();
  }

  /** One pass over the outbox; a pass already under way is joined, not doubled. */
  deliver(): Promise<void> {
    this.delivering ??= this.deliverPending().finally(() => {
      this.delivering = null;
    });
    return this.delivering;
  }

  /** Try to empty the outbox a few times, pausing between passes (for a run that exits after). */
  async flush(passes: number, pauseMs: number): Promise<void> {
    for (let pass = 0; pass < passes && (await this.outbox.pending()).length; pass++) {
      await this.deliver();
      if ((await this.outbox.pending()).length) await abortableSleep(pauseMs);
    }
  }

  private async deliverPending(): Promise<void> {
    for (const report of await this.outbox.pending()) {
      if (!(await this.deliverOne(report))) return;
    }
  }

  /** Send one report; false when the server is away and the rest must wait too. */
  private async deliverOne(report: RunReport): Promise<boolean> {
    const final = report.state !== 'running';
    const content = JSON.stringify({ ...report, sentAt: null });
    if (!final && this.delivered.get(report.id) === content) return true;
    try {
      await this.options.send({ ...report, sentAt: iso(this.options.clock.now()) });
      if (final) {
        await this.outbox.remove(report.id);
        this.delivered.delete(report.id);
      } else this.delivered.set(report.id, content);
      this.backoff.reset();
      return true;
    } catch (error) {
      if (refusedForGood(error)) {
        // The server will never take this one (it says why); keeping it would block the rest.
        this.options.log.error(
          { run: report.id, error: errorMessage(error) },
          'the server refused a run report; it is dropped',
        );
        await this.outbox.remove(report.id);
        return true;
      }
      const retryAt = this.backoff.fail(this.options.clock.now());
      this.options.log.warn(
        { run: report.id, error: errorMessage(error), retryAt: iso(retryAt) },
        'run report not delivered; it waits in the outbox',
      );
      return false;
    }
  }
}

/** A refusal no wait can change; a full repository takes the report once space is freed, like after an outage. */
function refusedForGood(error: unknown): boolean {
  return (
    error instanceof UserError &&
    !(error instanceof UnavailableError) &&
    !(error instanceof AuthError) &&
    !(error instanceof RepositoryFullError)
  );
}
