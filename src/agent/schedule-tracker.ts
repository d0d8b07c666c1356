// Which occurrence of the policy's schedule runs next, and which one ran last (kept in
// agent-state.json). Time is read from the agent's clock at each look, not from timers,
// so each occurrence fires once even when the clock jumps.
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { Schedule } from '../core/schedule.js';
import type { Policy } from '../format/policy.js';
import type { AgentState, AgentStateFiles } from './state-files.js';

export interface PlannedRun {
  /** The occurrence of the schedule. */
  occurrence: number;
  /** When it starts: the occurrence plus the policy's random spread. */
  due: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

function scheduleOf(policy: Policy | undefined): Schedule | null {
  if (!policy?.enabled) return null;
  return new Schedule(policy.schedule, policy.timezone);
}

export class ScheduleTracker {
  private state: AgentState = { lastScheduledFor: null };
  private planned: PlannedRun | null = null;

  constructor(
    private readonly files: AgentStateFiles,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get next(): PlannedRun | null {
    return this.planned;
  }

  async load(): Promise<void> {
    this.state = (await this.files.readState()) ?? { lastScheduledFor: null };
  }

  /** After a (re)start: run an occurrence missed while the agent was down, if still in its window. */
  async planFromStart(policy: Policy): Promise<void> {
    const schedule = scheduleOf(policy);
    const now = this.clock.now();
    if (!schedule) {
      this.planned = null;
      return;
    }
    const previous = schedule.previous(now);
    if (this.state.lastScheduledFor === null) {
      // A new agent starts with the next occurrence, not with one from before it existed.
      this.state.lastScheduledFor = previous;
      await this.files.writeState(this.state);
    } else if (
      previous !== null &&
      previous > this.state.lastScheduledFor &&
      now <= previous + policy.windowSeconds * 1000
    ) {
      this.planned = { occurrence: previous, due: now };
      this.log.info({ scheduledFor: iso(previous) }, 'running an occurrence missed while the agent was down');
      return;
    }
    this.planNext(policy, now);
  }

  planNext(policy: Policy, now: number): void {
    const occurrence = scheduleOf(policy)?.next(Math.max(now, this.state.lastScheduledFor ?? now)) ?? null;
    if (occurrence === null) {
      this.planned = null;
      return;
    }
    const spreadMs = policy.spreadSeconds * 1000;
    this.planned = { occurrence, due: occurrence + Math.floor(Math.random() * spreadMs) };
  }

  /**
   * The occurrence to run now, if one is due and its window is still open. A due one is
   * recorded as taken either way, and the next is planned.
   */
  async takeDue(policy: Policy, now: number): Promise<number | null> {
    if (!this.planned || now < this.planned.due) return null;
    const schedule = scheduleOf(policy);
    if (!schedule) {
      this.planned = null;
      return null;
    }
    // A clock that jumped may have passed several occurrences: only the latest counts.
    const occurrence = Math.max(this.planned.occurrence, schedule.previous(now) ?? this.planned.occurrence);
    this.state.lastScheduledFor = occurrence;
    this.planNext(policy, now);
    await this.files.writeState(this.state);
    if (now > occurrence + policy.windowSeconds * 1000) {
      this.log.warn(
        { scheduledFor: iso(occurrence) },
        'the window of this occurrence has passed; waiting for the next',
      );
      return null;
    }
    return occurrence;
  }
}
