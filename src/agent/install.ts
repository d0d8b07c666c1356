// `b365 agent install`: the agent's configuration, its token (mode 0600), its state
// directory (0700) and a hardened systemd service that runs `b365 agent run` in the
// foreground and restarts it if it dies. docs/units.md explains the sandbox.
import fs from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { KERNEL_AND_PROCESS_PROTECTIONS, execLine, writeFileAtomically } from '../install/systemd.js';
import type { AgentConfig } from './config.js';

export const SERVICE_NAME = 'backup365-agent.service';

export interface InstallOptions {
  server: string;
  /** The server's certificate fingerprint to pin, when no trusted CA signed it. */
  fingerprint?: string;
  token: string;
  configDirectory: string;
  unitDirectory: string;
  stateDirectory: string;
  /** The command that runs the CLI: node and its main script. */
  command: string[];
}

export interface InstalledFiles {
  config: string;
  tokenFile: string;
  unit: string;
  stateDirectory: string;
}

/**
 * The agent runs as root because it reads whole disks, but only with what imaging
 * needs: block devices read-only, CAP_SYS_ADMIN for fsfreeze's FIFREEZE/FITHAW, write
 * access to its state directory alone, and the network to reach the server.
 */
function sandbox(stateDirectory: string): string {
  return `UMask=0077
CapabilityBoundingSet=CAP_SYS_ADMIN
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${stateDirectory}
ProtectHome=read-only
PrivateTmp=yes
PrivateMounts=yes
PrivateNetwork=no
DevicePolicy=closed
DeviceAllow=block-* r
${KERNEL_AND_PROCESS_PROTECTIONS}
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service @pkey
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
# Not MemoryDenyWriteExecute=yes: V8 compiles JavaScript into memory it writes and then
# executes, and Node aborts at its first compiled function under that rule.`;
}

export function serviceUnit(command: string[], configFile: string, stateDirectory: string): string {
  for (const file of [configFile, stateDirectory])
    if (!path.isAbsolute(file)) throw new UsageError(`${file}: a service needs an absolute path`);
  const exec = execLine([...command, 'agent', 'run', '--config', configFile]);
  return `[Unit]
Description=Backup365 agent: scheduled images of this machine
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=${exec}
Environment=B365_LOG_LEVEL=info
Restart=always
RestartSec=30
# Imaging reads whole disks: stay out of the way of the machine's own work.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
KillSignal=SIGTERM
TimeoutStopSec=90

# The sandbox: see docs/units.md.
${sandbox(stateDirectory)}

[Install]
WantedBy=multi-user.target
`;
}

/** Created if absent; an existing directory is narrowed to 0700 too, for it holds upload sessions and cached policies. */
async function privateDirectory(directory: string): Promise<void> {
  await fs.mkdir(directory, { recursive: true, mode: 0o700 });
  await fs.chmod(directory, 0o700);
}

/** Paths are resolved here (the caller prints them), since a unit and its config must name absolute ones. */
export async function installAgent(options: InstallOptions): Promise<InstalledFiles> {
  const configDirectory = path.resolve(options.configDirectory);
  const stateDirectory = path.resolve(options.stateDirectory);
  const configFile = path.join(configDirectory, 'agent.json');
  const tokenFile = path.join(configDirectory, 'agent.token');
  const unit = path.join(path.resolve(options.unitDirectory), SERVICE_NAME);
  const config: AgentConfig = {
    server: options.server,
    tokenFile,
    stateDirectory,
    ...(options.fingerprint ? { fingerprint: options.fingerprint } : {}),
  };
  await writeFileAtomically(tokenFile, `${options.token}\n`, 0o600);
  await writeFileAtomically(configFile, `${JSON.stringify(config, null, 2)}\n`, 0o644);
  await privateDirectory(stateDirectory);
  await writeFileAtomically(unit, serviceUnit(options.command, configFile, stateDirectory), 0o644);
  return { config: configFile, tokenFile, unit, stateDirectory };
}
