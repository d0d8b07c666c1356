// HOST:PORT for every listening command (server, nbd).
import { UsageError } from './errors.js';

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!match) throw new UsageError(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  const port = Number(match[3]);
  if (port > 65535) throw new UsageError(`port ${port} is out of range`);
  return { host: match[1] ?? match[2]!, port };
}
