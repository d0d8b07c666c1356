// Parsing of command-line values shared by several commands.
import { UsageError } from '../errors.js';

/** "90s", "30m", "4h", "7d" → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(text.trim());
  if (!match) throw new UsageError(`cannot read duration ${JSON.stringify(text)}; use a number with s, m, h or d, like 4h`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(match[1]) * unit);
}
