// Cron schedules with a time zone, evaluated against an injectable clock: croner only
// computes occurrences, so an agent or server whose clock jumps (tests move time by
// hours) still fires each occurrence once, and nothing depends on real timers.
import { Cron } from 'croner';
import { UsageError } from './errors.js';

export function assertTimeZone(timezone: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new UsageError(`unknown time zone ${JSON.stringify(timezone)}; use an IANA name like Europe/Berlin or UTC`);
  }
  return timezone;
}

/** The zone this host calls local: the default for schedules. */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export class Schedule {
  private readonly cron: Cron;

  constructor(
    readonly expression: string,
    readonly timezone: string,
  ) {
    assertTimeZone(timezone);
    try {
      this.cron = new Cron(expression, { timezone, paused: true });
    } catch (error) {
      throw new UsageError(`cannot read schedule ${JSON.stringify(expression)}: ${(error as Error).message}`);
    }
  }

  /** The first occurrence strictly after `after` (ms), or null if there is none. */
  next(after: number): number | null {
    return this.cron.nextRun(new Date(after))?.getTime() ?? null;
  }

  /** The latest occurrence at or before `atOrBefore` (ms), or null. */
  previous(atOrBefore: number): number | null {
    const [found] = this.cron.previousRuns(1, new Date(atOrBefore + 1));
    return found ? found.getTime() : null;
  }
}
