// Settings of an unattended rescue run, read from the kernel command line
// (`b365.action=restore b365.server=URL b365.code=CODE ...`). Parsed and checked in one
// place, so that a mistyped parameter fails before anything touches a disk.
import { errorMessage, UsageError } from '../core/errors.js';
import { normalizeFingerprint } from '../client/tls-pin.js';
import { assertMachineName } from '../format/image-ref.js';

export type RescueAction = 'restore' | 'capture';
export type AfterAction = 'poweroff' | 'reboot' | 'shell';

export type NetworkSettings =
  | { mode: 'dhcp'; interface: string | null }
  | { mode: 'static'; interface: string | null; address: string; gateway: string | null; dns: string[] }
  | { mode: 'none' };

export interface UnattendedSettings {
  action: RescueAction;
  server: string;
  /** SHA-256 of the server's certificate (b365.fingerprint=), pinned before anything is sent. */
  fingerprint: string | null;
  /** A restore code, exchanged for a token scoped to one machine. */
  code: string | null;
  /** A token given directly (capture needs one that may write images). */
  token: string | null;
  machine: string | null;
  /** `latest`, a timestamp, or a full image id. */
  image: string;
  /** The disk to write (restore) or read (capture). */
  disk: string;
  after: AfterAction;
  afterFailure: AfterAction;
  network: NetworkSettings;
  /** How long to wait for the disk to appear while drivers load. */
  diskWaitSeconds: number;
}

/** Split a kernel command line into parameters; a value may be double-quoted. */
export function parseKernelCommandLine(text: string): Map<string, string> {
  const parameters = new Map<string, string>();
  const pattern = /([^\s=]+)(?:=("[^"]*"|\S*))?/g;
  for (const match of text.matchAll(pattern)) {
    const value = match[2] ?? '';
    parameters.set(
      match[1]!,
      value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1) : value,
    );
  }
  return parameters;
}

const AFTER_ACTIONS: AfterAction[] = ['poweroff', 'reboot', 'shell'];
const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function checkIpv4(text: string, withPrefix: boolean, what: string): string {
  const match = (withPrefix ? IPV4_CIDR : IPV4).exec(text);
  const octetsOk = match?.slice(1, 5).every((octet) => Number(octet) <= 255);
  const prefixOk = !withPrefix || (match && Number(match[5]) >= 1 && Number(match[5]) <= 32);
  if (!octetsOk || !prefixOk)
    throw new UsageError(
      `${what} ${JSON.stringify(text)} is not an IPv4 address${withPrefix ? ' with a prefix length, like 192.168.1.20/24' : ''}`,
    );
  return text;
}

export function parseAfter(text: string, name: string): AfterAction {
  if (!AFTER_ACTIONS.includes(text as AfterAction))
    throw new UsageError(`${name}=${text}: use one of ${AFTER_ACTIONS.join(', ')}`);
  return text as AfterAction;
}

export function checkServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`server ${JSON.stringify(text)} is not a URL like https://backup.example:8365`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`server ${JSON.stringify(text)} must start with https:// (or http:// on a trusted network)`);
  return text.replace(/\/+$/, '');
}

/** `b365.fingerprint=` in canonical form, or null when the kernel line gives none. */
export function kernelFingerprint(parameters: Map<string, string>): string | null {
  const text = parameters.get('b365.fingerprint');
  if (text === undefined || text === '') return null;
  try {
    return normalizeFingerprint(text);
  } catch (error) {
    throw new UsageError(`b365.fingerprint=${text}: ${errorMessage(error)}`);
  }
}

export function networkSettings(parameters: Map<string, string>): NetworkSettings {
  const mode = parameters.get('b365.net') ?? (parameters.has('b365.ip') ? 'static' : 'dhcp');
  const networkInterface = parameters.get('b365.iface') || null;
  if (mode === 'none') return { mode: 'none' };
  if (mode === 'dhcp') return { mode: 'dhcp', interface: networkInterface };
  if (mode !== 'static') throw new UsageError(`b365.net=${mode}: use dhcp, static or none`);
  const address = parameters.get('b365.ip');
  if (!address) throw new UsageError('b365.net=static needs b365.ip=ADDRESS/PREFIX');
  const gateway = parameters.get('b365.gw') || null;
  const dns = (parameters.get('b365.dns') ?? '').split(',').filter(Boolean);
  return {
    mode: 'static',
    interface: networkInterface,
    address: checkIpv4(address, true, 'b365.ip'),
    gateway: gateway === null ? null : checkIpv4(gateway, false, 'b365.gw'),
    dns: dns.map((server) => checkIpv4(server, false, 'b365.dns')),
  };
}

function waitSeconds(text: string | undefined): number {
  if (text === undefined || text === '') return 60;
  const seconds = Number(text);
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > 3600)
    throw new UsageError(`b365.disk-wait=${text}: give whole seconds, 0 to 3600`);
  return seconds;
}

/** The unattended run the command line asks for, or null when it asks for none. */
export function unattendedSettings(parameters: Map<string, string>): UnattendedSettings | null {
  const action = parameters.get('b365.action');
  if (action === undefined) return null;
  if (action !== 'restore' && action !== 'capture')
    throw new UsageError(`b365.action=${action}: use restore or capture`);
  const server = parameters.get('b365.server');
  if (!server) throw new UsageError('b365.server=URL is missing');
  const code = parameters.get('b365.code') || null;
  const token = parameters.get('b365.token') || null;
  if (!code && !token) throw new UsageError('give b365.code=RESTORE-CODE (or b365.token=TOKEN)');
  const machineText = parameters.get('b365.machine') || null;
  const machine = machineText === null ? null : assertMachineName(machineText);
  if (action === 'capture' && !machine) throw new UsageError('b365.action=capture needs b365.machine=NAME');
  const disk = parameters.get(action === 'restore' ? 'b365.target' : 'b365.source');
  if (!disk)
    throw new UsageError(
      action === 'restore' ? 'b365.target=/dev/DISK is missing' : 'b365.source=/dev/DISK is missing',
    );
  if (!disk.startsWith('/dev/'))
    throw new UsageError(`${action === 'restore' ? 'b365.target' : 'b365.source'}=${disk}: name a disk under /dev`);
  const serverUrl = checkServerUrl(server);
  const fingerprint = kernelFingerprint(parameters);
  if (fingerprint && new URL(serverUrl).protocol !== 'https:')
    throw new UsageError(
      `b365.fingerprint= pins a TLS certificate, but b365.server=${server} is plain HTTP: give an https:// URL`,
    );
  return {
    action,
    server: serverUrl,
    fingerprint,
    code,
    token,
    machine,
    image: parameters.get('b365.image') || 'latest',
    disk,
    after: parseAfter(parameters.get('b365.after') || 'shell', 'b365.after'),
    afterFailure: parseAfter(parameters.get('b365.after-failure') || 'shell', 'b365.after-failure'),
    network: networkSettings(parameters),
    diskWaitSeconds: waitSeconds(parameters.get('b365.disk-wait')),
  };
}

/** `b365.serve=/dev/DISK`: mount that disk and serve the repository on it. */
export interface ServeSettings {
  /** The disk (or partition) holding the repository at its filesystem's root. */
  device: string;
  /** host:port the server listens on. */
  listen: string;
  network: NetworkSettings;
  diskWaitSeconds: number;
}

const LISTEN = /^([0-9.]+|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

function checkListen(text: string): string {
  const match = LISTEN.exec(text);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535)
    throw new UsageError(`b365.listen=${text}: give host:port, like 0.0.0.0:8365`);
  return text;
}

/** The repository server the command line asks for, or null when it asks for none. */
export function serveSettings(parameters: Map<string, string>): ServeSettings | null {
  const device = parameters.get('b365.serve');
  if (device === undefined) return null;
  if (!device.startsWith('/dev/')) throw new UsageError(`b365.serve=${device}: name the repository's disk under /dev`);
  if (parameters.has('b365.action'))
    throw new UsageError(
      'b365.serve and b365.action exclude each other: serve a repository or restore/capture, not both',
    );
  return {
    device,
    listen: checkListen(parameters.get('b365.listen') || '0.0.0.0:8365'),
    network: networkSettings(parameters),
    diskWaitSeconds: waitSeconds(parameters.get('b365.disk-wait')),
  };
}
