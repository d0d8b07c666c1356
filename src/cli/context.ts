// What every client command needs: where the server is, which certificate to trust and
// which token to use, from flags first, then the environment (B365_SERVER,
// B365_FINGERPRINT, B365_TOKEN, B365_TOKEN_FILE).
import fs from 'node:fs';
import type { Command } from 'commander';
import type { LocalRepository } from '../../server/local-repository.js';
import { RepositoryClient } from '../client/repository.js';
import { clockFromEnvironment } from '../core/clock.js';
import { UsageError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { installInterruptHandling, processSignal } from './interrupt.js';

export const DEFAULT_SERVER = 'https://127.0.0.1:8365';

export interface GlobalOptions {
  server?: string;
  /** SHA-256 fingerprint of the server's certificate to trust (besides the CAs). */
  fingerprint?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
  progress?: boolean;
  logLevel?: string;
  logFormat?: string;
  restoreCode?: string;
  /** A repository directory on this machine, used in process instead of a server. */
  repo?: string;
}

export function globals(command: Command): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

export function resolveToken(options: GlobalOptions): string {
  if (options.token) return options.token;
  if (process.env.B365_TOKEN) return process.env.B365_TOKEN;
  const file = options.tokenFile ?? process.env.B365_TOKEN_FILE;
  if (file === '-') return tokenFromStdin();
  if (file) {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new UsageError(`cannot read token file ${file}: ${(error as Error).message}`);
    }
  }
  throw new UsageError('no token: pass --token, --token-file, or set B365_TOKEN');
}

/** `--token-file -`: the token pasted or piped in, so it never lands in shell history. */
function tokenFromStdin(): string {
  if (process.stdin.isTTY) process.stderr.write('paste the token, then press Enter and Ctrl-D: ');
  let text: string;
  try {
    text = fs.readFileSync(0, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the token from stdin: ${(error as Error).message}`);
  }
  const token = text
    .split('\n')
    .map((line) => line.trim())
    .find(Boolean);
  if (!token) throw new UsageError('no token on stdin (--token-file -)');
  return token;
}

export function serverOf(options: GlobalOptions): string {
  return options.server ?? process.env.B365_SERVER ?? DEFAULT_SERVER;
}

export function fingerprintOf(options: GlobalOptions): string | undefined {
  return options.fingerprint ?? (process.env.B365_FINGERPRINT || undefined);
}

/**
 * How long a command waits for the server. An interactive command (a listing, a
 * setting) answers within seconds or says the server is unreachable; a transfer
 * (image, restore, files get, a server-side job it waits for) rides out a server
 * restart. `B365_RETRY_FOR_MS`, when set, overrides the retry budget of both.
 */
export type Patience = 'interactive' | 'transfer';

const PATIENCE: Record<Patience, { retryForMs: number; answerTimeoutMs: number }> = {
  // Together under 10 s: one stalled attempt (5 s) ends the command, refused
  // connections are retried for 2 s in case the server is just restarting.
  interactive: { retryForMs: 2_000, answerTimeoutMs: 5_000 },
  transfer: { retryForMs: 5 * 60_000, answerTimeoutMs: 5 * 60_000 },
};

export function patienceOf(patience: Patience): { retryForMs: number; answerTimeoutMs: number } {
  const fromEnvironment = process.env.B365_RETRY_FOR_MS;
  const chosen = PATIENCE[patience];
  return fromEnvironment ? { ...chosen, retryForMs: Number(fromEnvironment) } : chosen;
}

/** A client for the command: with the token given, or one a restore code is exchanged for. */
export async function clientFor(command: Command, patience: Patience = 'interactive'): Promise<RepositoryClient> {
  const options = globals(command);
  const server = serverOf(options);
  const log = createLogger({ level: options.logLevel ?? process.env.B365_LOG_LEVEL ?? 'warn' });
  const code = options.restoreCode ?? process.env.B365_RESTORE_CODE;
  const waits = patienceOf(patience);
  const fingerprint = fingerprintOf(options);
  const token =
    code && !options.token
      ? (await RepositoryClient.exchangeRestoreCode(server, code, { ...waits, signal: processSignal, fingerprint }))
          .token
      : resolveToken(options);
  return new RepositoryClient({ server, token, log, signal: processSignal, fingerprint, ...waits });
}

/** `--repo DIR`, described once for every command that takes it. */
export const REPO_OPTION_HELP =
  'a repository directory on this machine (a USB disk...), used without a server; see docs/local-repository.md';

/** "b365 files get": how the lock names this command to anyone who finds the directory in use. */
function commandLine(command: Command): string {
  const words: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) words.unshift(current.name());
  return ['b365', ...words].join(' ');
}

/**
 * Where a command's images live: the directory of `--repo`, opened in this process and
 * locked until closed (`create`: made on first use, as by a capture), or the server's client.
 */
export async function repositoryFor(
  command: Command,
  patience: Patience,
  directory: 'create' | 'existing',
): Promise<RepositoryClient | LocalRepository> {
  const options = globals(command);
  if (!options.repo) return clientFor(command, patience);
  if (options.server) throw new UsageError('choose --repo DIR (a directory on this machine) or --server URL, not both');
  // Loaded only here: commands that talk to a server never load the repository's modules.
  const { LocalRepository } = await import('../../server/local-repository.js');
  return LocalRepository.open(options.repo, {
    command: commandLine(command),
    create: directory === 'create',
    clock: clockFromEnvironment(),
    log: createLogger({ level: options.logLevel ?? process.env.B365_LOG_LEVEL ?? 'warn' }),
  });
}

/** A client without a token, for what the server publishes to anyone (its signing keys). */
export function anonymousClientFor(command: Command): RepositoryClient {
  const options = globals(command);
  return new RepositoryClient({
    server: serverOf(options),
    token: process.env.B365_TOKEN ?? '',
    signal: processSignal,
    fingerprint: fingerprintOf(options),
    ...patienceOf('interactive'),
  });
}

/**
 * The process-wide AbortSignal that fires on the first SIGINT/SIGTERM (src/cli/interrupt.ts),
 * so long operations stop cleanly. The handling stays installed until the process ends.
 */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  return { signal: installInterruptHandling(), dispose() {} };
}
