// The command line that installs an agent against this server, as `b365 token create` and
// `b365 agent install` print it: the URL agents dial, the fingerprint they pin, and the
// token read from a file or stdin (`--token-file -`) so it stays out of shell history.
import os from 'node:os';
import { isLoopbackHost } from '../core/listen.js';

/** A loopback URL means the CLI runs on the server: agents elsewhere dial the host's name. */
export function urlForAgents(server: string): string {
  const url = new URL(server);
  if (isLoopbackHost(url.hostname)) url.hostname = os.hostname();
  return url.toString().replace(/\/+$/, '');
}

export function agentInstallCommand(server: string, fingerprint: string | null, tokenFile: string): string {
  const words = ['b365', 'agent', 'install', '--server', urlForAgents(server)];
  if (fingerprint) words.push('--fingerprint', fingerprint);
  words.push('--token-file', tokenFile);
  return words.join(' ');
}
