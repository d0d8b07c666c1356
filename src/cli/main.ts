#!/usr/bin/env node
// The `b365` command line. User errors print their message and exit with the code of
// their class (docs/cli.md); anything else is a bug and prints its stack.
import '../runtime-env.js';
import { Command, CommanderError } from 'commander';
import { ExitCode, UserError } from '../errors.js';
import { VERSION } from '../version.js';
import { jsonPrinted } from './output.js';
import { registerDisks } from './commands/disks.js';
import { registerFiles } from './commands/files.js';
import { registerImage } from './commands/image.js';
import { registerImages } from './commands/images.js';
import { registerNbd } from './commands/nbd.js';
import { registerRestore } from './commands/restore.js';
import { registerServer } from './commands/server.js';
import { registerRestoreCode } from './commands/restore-code.js';
import { registerToken } from './commands/token.js';
import { registerVerify } from './commands/verify.js';
import { registerAgent } from './commands/agent.js';
import { registerGc } from './commands/gc.js';
import { registerPolicy } from './commands/policy.js';
import { registerPrune } from './commands/prune.js';
import { registerReports } from './commands/reports.js';
import { registerRescue } from './commands/rescue.js';

export function buildProgram(): Command {
  const program = new Command('b365')
    .version(VERSION)
    .description('Backup365: block-level machine imaging and disaster recovery')
    .option('--server <url>', 'repository server (B365_SERVER, default http://127.0.0.1:8365)')
    .option('--token <token>', 'access token (B365_TOKEN)')
    .option('--token-file <file>', 'read the access token from a file (B365_TOKEN_FILE)')
    .option('--restore-code <code>', "a technician's restore code instead of a token (B365_RESTORE_CODE)")
    .option('--json', 'machine-readable output on stdout')
    .option('--log-level <level>', 'debug, info, warn, error')
    .showHelpAfterError()
    .exitOverride();
  registerServer(program);
  registerDisks(program);
  registerImage(program);
  registerRestore(program);
  registerImages(program);
  registerToken(program);
  registerRestoreCode(program);
  registerVerify(program);
  registerAgent(program);
  registerPolicy(program);
  registerReports(program);
  registerPrune(program);
  registerGc(program);
  registerFiles(program);
  registerNbd(program);
  registerRescue(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return ExitCode.ok;
      return ExitCode.usage;
    }
    const json = argv.includes('--json');
    if (error instanceof UserError) {
      if (json && !jsonPrinted) process.stdout.write(`${JSON.stringify({ error: { code: error.code, message: error.message, ...(error.details ?? {}) } }, null, 2)}\n`);
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
