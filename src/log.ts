// Structured logs: JSON lines (pino). The server logs to stderr or a file; the CLI
// keeps quiet below warnings unless asked.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { level?: string; name?: string; destination?: string | number } = {}): Logger {
  const level = options.level ?? process.env.B365_LOG_LEVEL ?? 'info';
  const destination = pino.destination({ dest: options.destination ?? 2, sync: true });
  return pino({ level, name: options.name ?? 'b365', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

export const silentLogger: Logger = pino({ level: 'silent' });
