// What systemd itself says about a unit, with no systemd running: its exposure score
// (`systemd-analyze security --offline=true`) and the system calls its SystemCallFilter=
// lines allow (`systemd-analyze syscall-filter`); and the system calls a process really
// makes (strace), to check the one against the other.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

/** The "Overall exposure level" systemd-analyze gives the unit file (0 safest, 10 worst). */
export async function exposure(unitFile: string): Promise<{ score: number; report: string }> {
  const result = await execa('systemd-analyze', ['security', '--offline=true', '--no-pager', unitFile], {
    reject: false,
  });
  const report = `${String(result.stdout)}\n${String(result.stderr)}`;
  const match = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(report);
  if (!match) throw new Error(`no exposure level in the output of systemd-analyze:\n${report}`);
  return { score: Number(match[1]), report };
}

async function groupMembers(group: string, seen: Set<string>): Promise<string[]> {
  if (seen.has(group)) return [];
  seen.add(group);
  const { stdout } = await execa('systemd-analyze', ['syscall-filter', '--no-pager', group]);
  const names: string[] = [];
  for (const line of String(stdout).split('\n').slice(1)) {
    const word = line.trim();
    if (!word || word.startsWith('#')) continue;
    names.push(...(word.startsWith('@') ? await groupMembers(word, seen) : [word]));
  }
  return names;
}

/** Every system call a list of names and @groups stands for, nested groups expanded. */
export async function expandSyscalls(words: string[]): Promise<Set<string>> {
  const names = new Set<string>();
  for (const word of words)
    for (const name of word.startsWith('@') ? await groupMembers(word, new Set()) : [word]) names.add(name);
  return names;
}

/** The system calls the unit's SystemCallFilter= lines let through (allow lists minus ~deny lists). */
export async function allowedSyscalls(unitText: string): Promise<Set<string>> {
  const lines = [...unitText.matchAll(/^SystemCallFilter=(.*)$/gm)].map((match) => match[1]!.trim());
  const allowed = await expandSyscalls(
    lines.filter((line) => !line.startsWith('~')).flatMap((line) => line.split(/\s+/)),
  );
  const denied = await expandSyscalls(
    lines.filter((line) => line.startsWith('~')).flatMap((line) => line.slice(1).trim().split(/\s+/)),
  );
  for (const name of denied) allowed.delete(name);
  return allowed;
}

/** Names of the system calls in an `strace -f -o FILE` trace. */
export async function tracedSyscalls(traceFile: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const line of (await fs.readFile(traceFile, 'utf8')).split('\n')) {
    const match = /^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]/.exec(line);
    if (match && !line.includes('+++') && !line.includes('---')) names.add(match[1]!);
  }
  return names;
}

/** The command line a unit starts, split as systemd would for our own (unquoted) words. */
export function execStart(unitText: string): string[] {
  return /^ExecStart=(.*)$/m.exec(unitText)![1]!.split(' ');
}

export async function writeUnit(directory: string, name: string, text: string): Promise<string> {
  const file = path.join(directory, name);
  await fs.writeFile(file, text);
  return file;
}

/** Address families of the sockets in an strace trace (`socket(AF_INET, …)`). */
export async function tracedSocketFamilies(traceFile: string): Promise<Set<string>> {
  const families = new Set<string>();
  for (const match of (await fs.readFile(traceFile, 'utf8')).matchAll(/\bsocket\((AF_[A-Z0-9]+)/g))
    families.add(match[1]!);
  return families;
}

/** The families the unit's RestrictAddressFamilies= lets a process open. */
export function allowedSocketFamilies(unitText: string): Set<string> {
  return new Set(/^RestrictAddressFamilies=(.*)$/m.exec(unitText)?.[1]?.trim().split(/\s+/) ?? []);
}

/** What `systemd-analyze verify` says of a unit file: empty when systemd accepts every line. */
export async function verifyUnit(unitFile: string): Promise<string> {
  const result = await execa('systemd-analyze', ['verify', '--man=no', unitFile], {
    reject: false,
    cwd: path.dirname(unitFile),
  });
  return (
    `${String(result.stdout)}${String(result.stderr)}`.trim() +
    (result.exitCode === 0 ? '' : `\n(exit code ${result.exitCode})`)
  );
}

/**
 * `unshare` arguments that run `command` as a unit's file-system sandbox would: a private
 * mount namespace where `readOnlyMounts` are read-only and only `writable` can be written
 * (ProtectSystem=strict with ReadWritePaths=). `command` starts with env -i, setpriv... as needed.
 */
export function mountSandboxArgs(options: { writable: string; readOnlyMounts: string[] }, command: string[]): string[] {
  const script = [
    'set -eu',
    'mount --make-rprivate /',
    `mount --bind "${options.writable}" "${options.writable}"`,
    ...options.readOnlyMounts.map((mountPoint) => `mount -o remount,bind,ro "${mountPoint}"`),
    'exec "$@"',
  ].join('\n');
  return ['--mount', '--', 'sh', '-c', script, 'sandbox', ...command];
}
