// Request fields that bound something (lifetimes), checked before anything is written,
// so a bad value is refused with 400 naming the field and its range.
import { UsageError } from '../src/core/errors.js';

export const MAX_TOKEN_TTL_SECONDS = 10 * 365 * 24 * 3600;

/** A lifetime in whole seconds from 1 to `maxSeconds`, or undefined when absent. */
export function ttlSecondsField(value: unknown, field: string, maxSeconds: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > maxSeconds) {
    throw new UsageError(
      `${field} must be a whole number of seconds from 1 to ${maxSeconds}, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
  return value;
}
