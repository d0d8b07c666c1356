// HOST:PORT for every listening command (server, nbd).
import { UsageError } from './errors.js';

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!match) throw new UsageError(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  const port = Number(match[3]);
  if (port > 65535) throw new UsageError(`port ${port} is out of range`);
  return { host: match[1] ?? match[2]!, port };
}

/** 127.0.0.0/8, ::1 (and ::ffff:127.x), or the name localhost: addresses no other machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  return /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}
