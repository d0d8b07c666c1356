// Runs the real `b365` command as a child process, as a user would.
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';

export const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when the command was given --json. */
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON of whatever shape the command prints; tests read its fields directly and assert on them
  json: any;
}

export async function b365(
  args: string[],
  options: {
    env?: Record<string, string | undefined>;
    input?: string;
    timeout?: number;
    cancelSignal?: AbortSignal;
    cwd?: string;
  } = {},
): Promise<CliResult> {
  const execaOptions: Options = {
    reject: false,
    env: { B365_LOG_LEVEL: 'warn', ...options.env },
    input: options.input,
    timeout: options.timeout ?? 600_000,
    cancelSignal: options.cancelSignal,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stripFinalNewline: false,
  };
  const result = await execa(process.execPath, [CLI_MAIN, ...args], execaOptions);
  const stdout = String(result.stdout ?? '');
  let json: unknown = null;
  if (args.includes('--json') && stdout.trim()) {
    try {
      json = JSON.parse(stdout);
    } catch {
      json = null;
    }
  }
  return { exitCode: result.exitCode ?? -1, stdout, stderr: String(result.stderr ?? ''), json };
}
