// Which address a request comes from, for per-address limits: the connection's peer,
// or the client that a trusted reverse proxy names in X-Forwarded-For. Nobody else's
// X-Forwarded-For is believed, so a client cannot pick the address it is counted as.
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { UsageError } from '../src/core/errors.js';

/** `::ffff:127.0.0.1` is 127.0.0.1: one client, one address, whichever socket family. */
export function canonicalAddress(address: string): string {
  const trimmed = address.trim().replace(/^\[(.*)\]$/, '$1');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(trimmed);
  return (mapped ? mapped[1]! : trimmed).toLowerCase();
}

/**
 * The key an address is counted under. An IPv6 host usually holds a whole /64, so
 * counting single IPv6 addresses would give one attacker 2^64 budgets.
 */
export function limitKeyOf(address: string): string {
  if (net.isIPv6(address)) {
    const groups = expandIPv6(address).slice(0, 4);
    return `${groups.join(':')}::/64`;
  }
  return address;
}

function expandIPv6(address: string): string[] {
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const middle = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right].map((group) => group.replace(/^0+(?=.)/, ''));
}

/** Addresses or CIDR blocks of reverse proxies whose X-Forwarded-For is believed. */
export class TrustedProxies {
  private readonly list = new net.BlockList();
  readonly count: number;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
      if (!family) throw new UsageError(`trustProxy: ${JSON.stringify(entry)} is not an IP address or CIDR block`);
      if (prefix === undefined) this.list.addAddress(canonicalAddress(address), family);
      else {
        const bits = Number(prefix);
        if (!Number.isInteger(bits) || bits < 0 || bits > (family === 'ipv4' ? 32 : 128))
          throw new UsageError(`trustProxy: ${JSON.stringify(entry)} has a bad prefix length`);
        this.list.addSubnet(address, bits, family);
      }
    }
    this.count = entries.length;
  }

  trusts(address: string): boolean {
    if (this.count === 0) return false;
    const canonical = canonicalAddress(address);
    const family = net.isIPv4(canonical) ? 'ipv4' : net.isIPv6(canonical) ? 'ipv6' : null;
    return family !== null && this.list.check(canonical, family);
  }
}

/**
 * The client's address: walk X-Forwarded-For from the right (the hop the nearest proxy
 * appended) past every trusted proxy; the first address that is not one is the client.
 * Entries left of it were written by the client and are not believed.
 */
export function clientAddress(request: IncomingMessage, proxies: TrustedProxies): string {
  let current = canonicalAddress(request.socket.remoteAddress ?? 'unknown');
  if (!proxies.trusts(current)) return current;
  const header = request.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map(canonicalAddress)
    .filter(Boolean);
  for (let position = hops.length - 1; position >= 0; position--) {
    const hop = hops[position]!;
    if (net.isIP(hop) === 0) break;
    current = hop;
    if (!proxies.trusts(hop)) break;
  }
  return current;
}
