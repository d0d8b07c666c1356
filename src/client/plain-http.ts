// Plain http:// is for the loopback interface only: anywhere else the token, restore
// codes and whole disks would cross the network in clear. B365_INSECURE_HTTP=1 is the
// explicit way out, for a network the operator trusts (the server's --insecure-http-anywhere).
import { UsageError } from '../core/errors.js';
import { isLoopbackHost } from '../core/listen.js';

export function refuseClearTextOffLoopback(server: string): void {
  const host = new URL(server).hostname;
  if (isLoopbackHost(host) || process.env.B365_INSECURE_HTTP === '1') return;
  throw new UsageError(
    `refusing plain ${server}: the token and the data would cross the network in clear; use https:// (the server serves HTTPS by default), or set B365_INSECURE_HTTP=1 if this network is trusted`,
  );
}
