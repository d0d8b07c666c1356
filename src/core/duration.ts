// Durations as people write them, read the same way by every command-line option and
// every setting of the server's configuration: a bare number is seconds (`0`, `90`),
// or a number with a unit s, m, h, d or w (`30m`, `1.5h`, `7d`).
import { UsageError } from './errors.js';

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

const DURATION = /^(\d+(?:\.\d+)?)\s*([smhdw])?$/;

/** Whether `text` reads as a duration (options that take a duration or a time ask this first). */
export function isDuration(text: string): boolean {
  return DURATION.test(text.trim());
}

/** A duration in milliseconds; `what` names the option or setting in the error. A JSON number is seconds. */
export function parseDurationMs(value: string | number, what = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0)
      throw new UsageError(`${what}: a duration must be 0 or more seconds, got ${value}`);
    return Math.round(value * 1000);
  }
  const match = DURATION.exec(value.trim());
  if (!match)
    throw new UsageError(
      `${what}: cannot read duration ${JSON.stringify(value)}; use seconds or a number with s, m, h, d or w, like 90, 30m, 4h or 7d`,
    );
  return Math.round(Number(match[1]) * UNIT_MS[(match[2] ?? 's') as Unit]);
}

/** A duration in whole seconds. */
export function parseDurationSeconds(value: string | number, what = 'duration'): number {
  return Math.round(parseDurationMs(value, what) / 1000);
}
