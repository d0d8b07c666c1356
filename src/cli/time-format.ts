// Times as tables show them: the local time in the server's configured zone, with its
// UTC offset, and how long ago (or how soon) that is. `--json` output keeps ISO UTC;
// only human tables and summaries go through here.
import type { RepositoryClient } from '../client/repository.js';
import { localTimeZone } from '../core/schedule.js';

export interface TimeFormat {
  /** IANA zone the times are shown in. */
  zone: string;
  /** The moment ages are measured from (the server's clock when it said). */
  now: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "2026-12-07 20:02 +01:00": local wall time in `zone` and its offset from UTC. */
export function formatLocalTime(time: number, zone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'longOffset',
    })
      .formatToParts(time)
      .map((part) => [part.type, part.value]),
  );
  // "GMT+05:30"; UTC itself is written "GMT".
  const offset = (parts.timeZoneName ?? 'GMT').replace(/^GMT/, '') || '+00:00';
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${offset}`;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "in 4 h" for times ahead. */
export function formatAge(time: number, now: number): string {
  const distance = Math.abs(now - time);
  if (distance < 5000) return 'just now';
  const amount =
    distance < MINUTE
      ? `${Math.floor(distance / 1000)} s`
      : distance < HOUR
        ? `${Math.floor(distance / MINUTE)} min`
        : distance < 2 * DAY
          ? `${Math.floor(distance / HOUR)} h`
          : `${Math.floor(distance / DAY)} d`;
  return time <= now ? `${amount} ago` : `in ${amount}`;
}

/** A table cell: "2026-12-07 20:02 +01:00 (3 h ago)"; null (shown as "-") for no time. */
export function formatWhen(iso: string | null | undefined, format: TimeFormat): string | null {
  if (!iso) return null;
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return iso;
  return `${formatLocalTime(time, format.zone)} (${formatAge(time, format.now)})`;
}

/** Whether `zone` is an IANA zone this runtime knows. */
function knownZone(zone: unknown): zone is string {
  if (typeof zone !== 'string' || zone === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * The server's zone and clock, from its health answer. A server too old to say its zone
 * leaves the times in this machine's zone.
 */
export async function serverTimeFormat(client: Pick<RepositoryClient, 'health'>): Promise<TimeFormat> {
  const health = await client.health();
  const serverNow = Date.parse(health.time);
  return {
    zone: knownZone(health.timezone) ? health.timezone : localTimeZone(),
    now: Number.isNaN(serverNow) ? Date.now() : serverNow,
  };
}
