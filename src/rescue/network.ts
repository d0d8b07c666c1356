// Network set-up of the rescue system: DHCP on every wired interface by default, or a
// static address. Uses the same tools a technician would (ip, dhclient), so a failure
// can be retried by hand from the shell.
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { UnavailableError, UsageError } from '../core/errors.js';
import type { NetworkSettings } from './cmdline.js';

export interface NetworkInterface {
  name: string;
  mac: string | null;
  up: boolean;
  /** IPv4 addresses with prefix length, e.g. 10.0.2.15/24. */
  addresses: string[];
}

interface IpAddressEntry {
  ifname?: unknown;
  address?: unknown;
  link_type?: unknown;
  operstate?: unknown;
  flags?: unknown;
  addr_info?: { family?: unknown; local?: unknown; prefixlen?: unknown }[];
}

/** Wired and wireless interfaces with an Ethernet address; never the loopback. */
export async function listInterfaces(): Promise<NetworkInterface[]> {
  const result = await execa('ip', ['-json', 'address', 'show']);
  let entries: IpAddressEntry[];
  try {
    entries = JSON.parse(String(result.stdout)) as IpAddressEntry[];
  } catch {
    throw new UnavailableError('`ip -json address show` printed something that is not JSON');
  }
  return entries
    .filter((entry) => entry.link_type === 'ether' && typeof entry.ifname === 'string')
    .map((entry) => ({
      name: entry.ifname as string,
      mac: typeof entry.address === 'string' ? entry.address : null,
      up: Array.isArray(entry.flags) && entry.flags.includes('UP'),
      addresses: (entry.addr_info ?? [])
        .filter((info) => info.family === 'inet')
        .map((info) => `${String(info.local)}/${String(info.prefixlen)}`),
    }));
}

/** Network drivers load a moment after boot: wait for the first interface. */
export async function waitForInterfaces(timeoutMs: number): Promise<NetworkInterface[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const interfaces = await listInterfaces();
    if (interfaces.length || Date.now() >= deadline) return interfaces;
    await sleep(500);
  }
}

async function linkUp(name: string): Promise<void> {
  await execa('ip', ['link', 'set', 'dev', name, 'up']);
}

/** Ask for a DHCP lease on the named interfaces (all of them by default). */
export async function configureDhcp(names: string[], timeoutMs = 60_000): Promise<NetworkInterface[]> {
  if (!names.length)
    throw new UnavailableError('no network interface found: is the cable plugged in and the card supported?');
  for (const name of names) await linkUp(name);
  // -1: try once and exit non-zero if no lease came; the timeout bounds that try.
  const result = await execa('dhclient', ['-1', '-4', ...names], { reject: false, timeout: timeoutMs });
  const configured = (await listInterfaces()).filter((entry) => names.includes(entry.name) && entry.addresses.length);
  if (!configured.length) {
    const reason = result.timedOut
      ? `no answer within ${Math.round(timeoutMs / 1000)} s`
      : String(result.stderr).trim().split('\n').slice(-1)[0] || `dhclient exited ${result.exitCode}`;
    throw new UnavailableError(`DHCP on ${names.join(', ')} failed: ${reason}`);
  }
  return configured;
}

export async function configureStatic(
  name: string,
  address: string,
  gateway: string | null,
  dns: string[],
): Promise<NetworkInterface[]> {
  await linkUp(name);
  await execa('ip', ['address', 'flush', 'dev', name]);
  await execa('ip', ['address', 'add', address, 'dev', name]);
  if (gateway) await execa('ip', ['route', 'replace', 'default', 'via', gateway, 'dev', name]);
  if (dns.length) await fs.writeFile('/etc/resolv.conf', dns.map((server) => `nameserver ${server}\n`).join(''));
  return (await listInterfaces()).filter((entry) => entry.name === name);
}

/** Bring the network up as the settings say; returns the interfaces that got an address. */
export async function configureNetwork(settings: NetworkSettings, waitMs = 30_000): Promise<NetworkInterface[]> {
  if (settings.mode === 'none') return [];
  const interfaces = await waitForInterfaces(waitMs);
  const chosen = settings.interface ? interfaces.filter((entry) => entry.name === settings.interface) : interfaces;
  if (settings.interface && !chosen.length) {
    throw new UsageError(
      `there is no network interface ${settings.interface}; found ${interfaces.map((entry) => entry.name).join(', ') || 'none'}`,
    );
  }
  if (settings.mode === 'dhcp') return configureDhcp(chosen.map((entry) => entry.name));
  if (!chosen.length) throw new UnavailableError('no network interface found');
  return configureStatic(chosen[0]!.name, settings.address, settings.gateway, settings.dns);
}
