// `b365 server install`: the repository server as a hardened systemd service. It runs
// as a dedicated system user in a sandbox that leaves it its state directory, its
// sockets and nothing else; docs/units.md says what each directive is for and what
// `systemd-analyze security` rates it.
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { KERNEL_AND_PROCESS_PROTECTIONS, execLine, writeFileAtomically } from './systemd.js';

export const SERVER_SERVICE = 'backup365-server.service';
export const SERVER_USER = 'backup365';
/** systemd creates /var/lib/<StateDirectory> for the service user before each start. */
export const SERVER_STATE_NAME = 'backup365';
export const SERVER_STATE_DIRECTORY = `/var/lib/${SERVER_STATE_NAME}`;
export const DEFAULT_INSTALLED_REPO = `${SERVER_STATE_DIRECTORY}/repo`;
export const DEFAULT_INSTALLED_LISTEN = '0.0.0.0:8365';

export interface ServerUnitOptions {
  /** node, its options, the CLI's main script: absolute paths. */
  command: string[];
  user: string;
  repo: string;
  listen: string;
  /** A server configuration file (certificate, notifications...), passed as --config. */
  config: string | null;
  /** TLS arguments for `b365 server`: --tls-cert/--tls-key (absolute) and --tls-name. */
  tls?: { cert?: string; key?: string; names?: string[] };
}

function tlsArguments(tls: ServerUnitOptions['tls']): string[] {
  if (!tls) return [];
  return [
    ...(tls.cert ? ['--tls-cert', tls.cert] : []),
    ...(tls.key ? ['--tls-key', tls.key] : []),
    ...(tls.names ?? []).flatMap((name) => ['--tls-name', name]),
  ];
}

export function listenPort(listen: string): number {
  const port = Number(/:(\d+)$/.exec(listen)?.[1]);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`--listen ${listen}: expected HOST:PORT with a port from 1 to 65535`);
  return port;
}

/** A port below 1024 needs exactly one capability; any other port needs none. */
function capabilityLines(listen: string): string {
  if (listenPort(listen) >= 1024) return 'CapabilityBoundingSet=\nAmbientCapabilities=';
  return 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE';
}

/** A repository outside the state directory must be named writable, or ProtectSystem=strict keeps it read-only. */
function writablePaths(repo: string): string {
  const inside = repo === SERVER_STATE_DIRECTORY || repo.startsWith(`${SERVER_STATE_DIRECTORY}/`);
  return inside ? '' : `ReadWritePaths=${repo}\n`;
}

export function serverUnit(options: ServerUnitOptions): string {
  const files = [
    ['--repo', options.repo],
    ['--config', options.config],
    ['--tls-cert', options.tls?.cert],
    ['--tls-key', options.tls?.key],
  ].filter((entry): entry is [string, string] => Boolean(entry[1]));
  for (const [name, value] of files) {
    if (!path.isAbsolute(value)) throw new UsageError(`${name} ${value}: a service needs an absolute path`);
  }
  const exec = execLine([
    ...options.command,
    'server',
    ...(options.config ? ['--config', options.config] : []),
    '--repo',
    options.repo,
    '--listen',
    options.listen,
    ...tlsArguments(options.tls),
  ]);
  return `[Unit]
Description=Backup365 repository server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${options.user}
Group=${options.user}
ExecStart=${exec}
# Reloads the TLS certificate without dropping uploads.
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
TimeoutStopSec=90
LimitNOFILE=65536
StateDirectory=${SERVER_STATE_NAME}
StateDirectoryMode=0700
${writablePaths(options.repo)}UMask=0077

# The sandbox: see docs/units.md.
${capabilityLines(options.listen)}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateMounts=yes
${KERNEL_AND_PROCESS_PROTECTIONS}
RemoveIPC=yes
DevicePolicy=closed
# AF_NETLINK: Node lists the host's addresses (for the certificate's names) over netlink.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service @pkey
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
# Not MemoryDenyWriteExecute=yes: V8 compiles JavaScript into memory it writes and then
# executes, and Node aborts at its first compiled function under that rule.

[Install]
WantedBy=multi-user.target
`;
}

export interface ServerInstallPlan extends ServerUnitOptions {
  unitDirectory: string;
}

export function serverUnitPath(unitDirectory: string): string {
  return path.join(unitDirectory, SERVER_SERVICE);
}

export async function writeServerUnit(plan: ServerInstallPlan): Promise<string> {
  const file = serverUnitPath(plan.unitDirectory);
  await writeFileAtomically(file, serverUnit(plan), 0o644);
  return file;
}
