#!/usr/bin/env node
// The `b365` command line. User errors print their message and exit with the code of
// their class (docs/cli.md); anything else is a bug and prints its stack.
import '../core/runtime-env.js';
import { Command, CommanderError } from 'commander';
import { ExitCode, InterruptedError, UserError } from '../core/errors.js';
import { parseLogFormat, setLogFormat } from '../core/log.js';
import { VERSION } from '../core/version.js';
import { installInterruptHandling, interruptedBy, interruptExitCode } from './interrupt.js';
import { jsonPrinted } from './output.js';
type Register = (program: Command) => void;

/**
 * Each top-level command and the module that defines it. Only the module of the
 * command being run is loaded: a capture does not pay for the server, the agent's
 * scheduler or the mailer (a few tens of MiB of memory).
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  server: async () => (await import('./commands/server.js')).registerServer,
  disks: async () => (await import('./commands/disks.js')).registerDisks,
  image: async () => (await import('./commands/image.js')).registerImage,
  restore: async () => (await import('./commands/restore.js')).registerRestore,
  images: async () => (await import('./commands/images.js')).registerImages,
  machines: async () => (await import('./commands/images.js')).registerImages,
  token: async () => (await import('./commands/token.js')).registerToken,
  'restore-code': async () => (await import('./commands/restore-code.js')).registerRestoreCode,
  verify: async () => (await import('./commands/verify.js')).registerVerify,
  keys: async () => (await import('./commands/verify.js')).registerVerify,
  agent: async () => (await import('./commands/agent.js')).registerAgent,
  agents: async () => (await import('./commands/agent.js')).registerAgent,
  policy: async () => (await import('./commands/policy.js')).registerPolicy,
  reports: async () => (await import('./commands/reports.js')).registerReports,
  incidents: async () => (await import('./commands/reports.js')).registerReports,
  prune: async () => (await import('./commands/prune.js')).registerPrune,
  gc: async () => (await import('./commands/gc.js')).registerGc,
  files: async () => (await import('./commands/files.js')).registerFiles,
  nbd: async () => (await import('./commands/nbd.js')).registerNbd,
  rescue: async () => (await import('./commands/rescue.js')).registerRescue,
};

/** Commands that run until told to stop and handle SIGINT/SIGTERM themselves (or, in the rescue console, ask). */
const OWN_SIGNAL_HANDLING = new Set(['server', 'agent', 'agents', 'nbd', 'rescue']);

const OPTIONS_WITH_VALUES = new Set([
  '--server',
  '--fingerprint',
  '--token',
  '--token-file',
  '--restore-code',
  '--log-level',
  '--log-format',
]);

/** The command word of argv, skipping global options (and their values). */
function commandWord(argv: string[]): string | undefined {
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (OPTIONS_WITH_VALUES.has(arg)) index++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('b365')
    .version(VERSION)
    .description('Backup365: block-level machine imaging and disaster recovery')
    .option('--server <url>', 'repository server (B365_SERVER, default https://127.0.0.1:8365)')
    .option(
      '--fingerprint <sha256>',
      'trust the server whose TLS certificate has this SHA-256 fingerprint, as `b365 server fingerprint` prints it (B365_FINGERPRINT)',
    )
    .option('--token <token>', 'access token (B365_TOKEN)')
    .option('--token-file <file>', 'read the access token from a file (B365_TOKEN_FILE)')
    .option('--restore-code <code>', "a technician's restore code instead of a token (B365_RESTORE_CODE)")
    .option('--json', 'machine-readable output on stdout')
    .option('--log-level <level>', 'debug, info, warn, error')
    .option(
      '--log-format <format>',
      'text (human lines), json, or auto: json under systemd or when stderr is not a terminal (B365_LOG_FORMAT)',
    )
    .showHelpAfterError()
    // Subcommands inherit this: each one's help also lists the options every command takes.
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .hook('preAction', (_program, action) => {
      const { logFormat } = action.optsWithGlobals() as { logFormat?: string };
      if (logFormat !== undefined) setLogFormat(parseLogFormat(logFormat));
    });
  const wanted = commandWord(argv);
  const loaders = wanted && COMMANDS[wanted] ? [COMMANDS[wanted]!] : [...new Set(Object.values(COMMANDS))];
  const registered = new Set<Register>();
  for (const load of loaders) {
    const register = await load();
    if (registered.has(register)) continue;
    registered.add(register);
    register(program);
  }
  return program;
}

/** After SIGINT/SIGTERM whatever error ends the command is the interruption: say so, and what was kept. */
function reportInterruption(error: unknown, json: boolean): number {
  const signal = interruptedBy()!;
  const message =
    error instanceof InterruptedError
      ? error.message
      : `interrupted by ${signal}: ${(error as Error)?.message ?? String(error)}`;
  if (json && !jsonPrinted)
    process.stdout.write(`${JSON.stringify({ error: { code: 'interrupted', signal, message } }, null, 2)}\n`);
  process.stderr.write(`b365: ${message}\n`);
  return interruptExitCode();
}

async function main(argv: string[]): Promise<number> {
  const word = commandWord(argv);
  if (!word || !OWN_SIGNAL_HANDLING.has(word)) installInterruptHandling();
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
      )
        return ExitCode.ok;
      return ExitCode.usage;
    }
    const json = argv.includes('--json');
    if (interruptedBy()) return reportInterruption(error, json);
    if (error instanceof UserError) {
      if (json && !jsonPrinted)
        process.stdout.write(
          `${JSON.stringify({ error: { code: error.code, message: error.message, ...(error.details ?? {}) } }, null, 2)}\n`,
        );
      process.stderr.write(`b365: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`b365: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
    return ExitCode.failure;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`b365: ${String(error)}\n`);
    process.exitCode = ExitCode.failure;
  },
);
