// What the two `install` commands share: writing a unit file atomically, quoting
// command words for ExecStart=, and handing the unit to systemd when systemd runs here.
import fs from 'node:fs/promises';
import { execa } from 'execa';
import { writeFileAtomic } from '../core/atomic-file.js';
import { UserError } from '../core/errors.js';

export const DEFAULT_UNIT_DIRECTORY = '/etc/systemd/system';

/** What neither the server nor the agent needs: kernel settings, other processes, namespaces, realtime, setuid (docs/units.md). */
export const KERNEL_AND_PROCESS_PROTECTIONS = `ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
KeyringMode=private`;

/** systemd is not the init system here: the files were written, nothing was enabled. */
export class SystemdAbsentError extends UserError {
  override readonly code = 'systemd_absent';
}

/** One word of an ExecStart= line, quoted when systemd would otherwise split or expand it. */
export function quoteForSystemd(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped) ? escaped : `"${escaped.replace(/(["\\])/g, '\\$1')}"`;
}

export function execLine(words: string[]): string {
  return words.map(quoteForSystemd).join(' ');
}

/**
 * Temp file, fsync, rename, fsync of the directory: a reader (or systemd) never sees half a
 * file, and a power cut right after install leaves the old file or the new one whole.
 */
export function writeFileAtomically(file: string, text: string, mode: number): Promise<void> {
  return writeFileAtomic(file, text, { mode, directoryMode: 0o755 });
}

/** The test systemd itself uses (sd_booted): this directory exists only when systemd is PID 1. */
export async function systemdRunning(): Promise<boolean> {
  return fs.stat('/run/systemd/system').then(
    (stats) => stats.isDirectory(),
    () => false,
  );
}

async function initName(): Promise<string> {
  return (await fs.readFile('/proc/1/comm', 'utf8').catch(() => 'unknown')).trim();
}

/**
 * Reload systemd and enable and start the service. Where systemd does not run, say so
 * (the caller has already printed what it wrote) and fail with the command to run later.
 */
export async function enableService(service: string): Promise<void> {
  if (!(await systemdRunning())) {
    throw new SystemdAbsentError(
      `systemd is not running on this machine (PID 1 is ${await initName()}), so ${service} was written but not enabled; where systemd runs, enable it with: systemctl daemon-reload && systemctl enable --now ${service}`,
    );
  }
  for (const args of [['daemon-reload'], ['enable', '--now', service]]) {
    const result = await execa('systemctl', args, { reject: false });
    if (result.exitCode !== 0)
      throw new UserError(
        `systemctl ${args.join(' ')} failed: ${String(result.stderr).trim() || `exit code ${result.exitCode}`}`,
      );
  }
}
