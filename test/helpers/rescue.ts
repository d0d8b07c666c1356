// The rescue program's unattended mode, run on this host against a real server, and the
// `B365-RESULT` line it ends with (also what the e2e tests read off the serial console).
import { b365, type CliResult } from './cli.js';
import type { TestServer } from './server.js';

/** Parse `B365-RESULT key=value key="quoted value"` into its fields. */
export function parseResultLine(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    fields[match[1]!] = match[2]!.startsWith('"') ? (JSON.parse(match[2]!) as string) : match[2]!;
  }
  return fields;
}

/** The fields of the `B365-RESULT` line in a run's output (none if it printed none). */
export function resultOf(output: string): Record<string, string> {
  return parseResultLine(output.split('\n').find((candidate) => candidate.startsWith('B365-RESULT ')) ?? '');
}

/** `b365 rescue --unattended` with these kernel parameters; no network set-up, no power-off. */
export function rescueUnattended(server: TestServer, parameters: string): Promise<CliResult> {
  return b365(
    [
      'rescue',
      '--unattended',
      '--console',
      'none',
      '--cmdline',
      `boot=live b365.server=${server.url} b365.net=none ${parameters}`,
    ],
    { env: { B365_STATE_DIR: server.env.B365_STATE_DIR } },
  );
}

export async function createRestoreCode(server: TestServer, machine: string): Promise<{ code: string; id: number }> {
  const created = await b365(['restore-code', 'create', '--machine', machine, '--json'], { env: server.env });
  if (created.exitCode !== 0) throw new Error(created.stderr);
  return created.json as { code: string; id: number };
}
