// Logs of the server, the agent and the CLI (pino). JSON lines where a machine reads
// them (a log file, journald, a pipe), with a syslog priority prefix when journald
// does; short human lines on a terminal. `--log-format` / B365_LOG_FORMAT choose.
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import tty from 'node:tty';
import { pino, type DestinationStream, type Logger } from 'pino';
import { UsageError } from './errors.js';

export type { Logger };

export type LogFormat = 'text' | 'json' | 'auto';
const LOG_FORMATS: readonly LogFormat[] = ['text', 'json', 'auto'];

let chosenFormat: LogFormat | null = null;

export function parseLogFormat(text: string): LogFormat {
  if (!LOG_FORMATS.includes(text as LogFormat))
    throw new UsageError(`--log-format must be text, json or auto, got ${JSON.stringify(text)}`);
  return text as LogFormat;
}

/** The format every logger of this process uses unless told otherwise (the CLI's --log-format). */
export function setLogFormat(format: LogFormat): void {
  chosenFormat = format;
}

function requestedFormat(): LogFormat {
  if (chosenFormat) return chosenFormat;
  const fromEnvironment = process.env.B365_LOG_FORMAT;
  return fromEnvironment ? parseLogFormat(fromEnvironment) : 'auto';
}

/** Started by systemd: its journal (or its log settings) want JSON, whatever the stream is. */
function underSystemd(): boolean {
  return Boolean(process.env.JOURNAL_STREAM || process.env.INVOCATION_ID);
}

/**
 * Whether this file descriptor is the journal's stream: systemd names it in JOURNAL_STREAM
 * as device:inode, so a child that redirected its stderr elsewhere is not mistaken for it.
 */
export function writesToJournal(fd: number): boolean {
  const stream = process.env.JOURNAL_STREAM;
  if (!stream) return false;
  try {
    const stat = fs.fstatSync(fd);
    return stream === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}

export function resolveLogFormat(requested: LogFormat, fd: number | null): 'text' | 'json' {
  if (requested !== 'auto') return requested;
  if (fd === null || underSystemd()) return 'json';
  return tty.isatty(fd) ? 'text' : 'json';
}

/** pino's numeric levels as syslog priorities, which journald reads from a `<N>` prefix (SyslogLevelPrefix). */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

const LEVEL_WORDS: Record<number, string> = { 60: 'fatal', 50: 'error', 40: 'warning', 20: 'debug', 10: 'trace' };
const NOT_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

function fieldText(value: unknown): string {
  if (value && typeof value === 'object' && 'message' in value) return String((value as { message: unknown }).message);
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** One JSON log record as a line a person reads: `warning: retrying (attempt 2, error: …)`. */
export function humanLine(record: Record<string, unknown>): string {
  const level = Number(record.level);
  const prefix = LEVEL_WORDS[level] ?? String(record.name ?? 'b365');
  const fields = Object.entries(record)
    .filter(([key]) => !NOT_FIELDS.has(key))
    .map(([key, value]) => `${key}: ${fieldText(value)}`);
  return `${prefix}: ${String(record.msg ?? '')}${fields.length ? ` (${fields.join(', ')})` : ''}\n`;
}

/** A pino destination that rewrites each JSON line before it reaches `target`. */
function rewriting(target: DestinationStream, rewrite: (line: string) => string): DestinationStream {
  return {
    write(line: string) {
      target.write(rewrite(line));
    },
  };
}

function destinationFor(where: string | number, format: 'text' | 'json'): DestinationStream {
  const target = pino.destination({ dest: where, sync: true });
  if (format === 'text') return rewriting(target, (line) => humanLine(JSON.parse(line) as Record<string, unknown>));
  if (typeof where === 'number' && writesToJournal(where)) {
    return rewriting(target, (line) => `<${syslogPriority(Number(/^\{"level":(\d+)/.exec(line)?.[1] ?? 30))}>${line}`);
  }
  return target;
}

/** Fields every line logged within a context carries, such as the id of the request being handled. */
export const logContext = new AsyncLocalStorage<Record<string, unknown>>();

export function createLogger(
  options: { level?: string; name?: string; destination?: string | number; format?: LogFormat } = {},
): Logger {
  const level = options.level ?? process.env.B365_LOG_LEVEL ?? 'info';
  const where = options.destination ?? 2;
  const format = resolveLogFormat(options.format ?? requestedFormat(), typeof where === 'number' ? where : null);
  return pino(
    {
      level,
      name: options.name ?? 'b365',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin: () => logContext.getStore() ?? {},
    },
    destinationFor(where, format),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
