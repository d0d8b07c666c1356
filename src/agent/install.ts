// `b365 agent install`: the agent's configuration, its token (mode 0600) and a systemd
// service that runs `b365 agent run` in the foreground and restarts it if it dies.
import fs from 'node:fs/promises';
import path from 'node:path';
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
}

function quoteForSystemd(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/(["\\])/g, '\\$1')}"`;
}

export function serviceUnit(command: string[], configFile: string): string {
  const exec = [...command, 'agent', 'run', '--config', configFile].map(quoteForSystemd).join(' ');
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

[Install]
WantedBy=multi-user.target
`;
}

async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const temporary = `${file}.tmp`;
  await fs.writeFile(temporary, text, { mode });
  await fs.chmod(temporary, mode);
  await fs.rename(temporary, file);
}

export async function installAgent(options: InstallOptions): Promise<InstalledFiles> {
  const configFile = path.join(options.configDirectory, 'agent.json');
  const tokenFile = path.join(options.configDirectory, 'agent.token');
  const unit = path.join(options.unitDirectory, SERVICE_NAME);
  const config: AgentConfig = { server: options.server, tokenFile, stateDirectory: options.stateDirectory, ...(options.fingerprint ? { fingerprint: options.fingerprint } : {}) };
  await writeAtomically(tokenFile, `${options.token}\n`, 0o600);
  await writeAtomically(configFile, `${JSON.stringify(config, null, 2)}\n`, 0o644);
  await fs.mkdir(options.stateDirectory, { recursive: true, mode: 0o700 });
  await writeAtomically(unit, serviceUnit(options.command, configFile), 0o644);
  return { config: configFile, tokenFile, unit };
}
