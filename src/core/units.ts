// How sizes and durations read to people: binary units (KiB, MiB...) with one decimal,
// and durations from milliseconds to minutes. Every command, report and notice uses these,
// and options that take a size read it the one way parseBytes does.
import { UsageError } from './errors.js';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

const BYTE_UNITS = ['', 'k', 'm', 'g', 't'];

/**
 * A size as people type it: "20M", "512K", "1.5GiB", "4096" (binary multiples, as curl's
 * --limit-rate and dd read them; a trailing "B", "iB" or "/s" is allowed). `what` names
 * the option in the error.
 */
export function parseBytes(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:\/s)?$/i.exec(text.trim());
  const bytes = match ? Math.round(Number(match[1]) * 1024 ** BYTE_UNITS.indexOf(match[2]!.toLowerCase())) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new UsageError(`${what} takes a size such as 20M, 512K or 1G, got ${JSON.stringify(text)}`);
  return bytes;
}
