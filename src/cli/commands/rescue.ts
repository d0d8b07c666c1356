// `b365 rescue`: the program the rescue medium starts on its consoles. Interactive by
// default; `--unattended` runs what the kernel command line's b365.* parameters ask
// and ends with a B365-RESULT line; `--serve` serves the repository disk that b365.serve
// names (bootmedia/README.md lists the parameters).
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { errorMessage, ExitCode, UsageError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { failureCode, resultLine } from '../../rescue/actions.js';
import {
  parseKernelCommandLine,
  serveSettings,
  unattendedSettings,
  type UnattendedSettings,
} from '../../rescue/cmdline.js';
import { activeConsoles, ConsoleEcho } from '../../rescue/console.js';
import { runInteractive } from '../../rescue/interactive.js';
import { finish } from '../../rescue/power.js';
import { Prompter } from '../../rescue/prompter.js';
import { runServe } from '../../rescue/serve.js';
import { runUnattended } from '../../rescue/unattended.js';
import { globals, interruptSignal } from '../context.js';

interface RescueOptions {
  unattended?: boolean;
  serve?: boolean;
  cmdline: string;
  console: string[];
  network: boolean;
  loopDevices?: boolean;
}

async function readCommandLine(source: string): Promise<string> {
  // A file (the default /proc/cmdline) or, for tests and scripts, the parameters themselves.
  if (source.startsWith('/')) return fs.readFile(source, 'utf8');
  return source;
}

/** The console lines of an unattended run go to stdout and to these consoles ('auto': every active one). */
function consoleEcho(consoles: string[]): ConsoleEcho {
  return new ConsoleEcho(
    process.stdout,
    consoles.flatMap((entry) => (entry === 'auto' ? activeConsoles() : entry === 'none' ? [] : [entry])),
  );
}

/** Run until done or stopped by a signal, then release the signal handling and the consoles. */
async function untilDone(echo: ConsoleEcho, run: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
  const interrupt = interruptSignal();
  try {
    await run(interrupt.signal);
  } finally {
    interrupt.dispose();
    echo.close();
  }
}

export function registerRescue(program: Command): void {
  program
    .command('rescue')
    .description(
      'the rescue medium program: restore or capture a disk, interactively or as the kernel command line says',
    )
    .option('--unattended', 'run the b365.action=... given on the kernel command line, then report a B365-RESULT line')
    .option(
      '--serve',
      'mount the disk b365.serve=/dev/DISK names and serve the repository on it (b365.listen=HOST:PORT, default 0.0.0.0:8365)',
    )
    .option('--cmdline <file-or-text>', 'where the b365.* parameters come from', '/proc/cmdline')
    .option(
      '--console <device...>',
      'also print unattended progress on these devices ("auto": the kernel consoles, "none")',
      ['auto'],
    )
    .option('--no-network', 'do not offer to configure the network')
    .option('--loop-devices', 'offer loop devices as disks (for tests with image files)')
    .action(async (options: RescueOptions, command: Command) => {
      const log = createLogger({ level: globals(command).logLevel ?? process.env.B365_LOG_LEVEL ?? 'warn' });
      const parameters = parseKernelCommandLine(await readCommandLine(options.cmdline));
      if (options.serve) {
        const settings = serveSettings(parameters);
        if (!settings) throw new UsageError(`no b365.serve=/dev/DISK in ${options.cmdline}`);
        const echo = consoleEcho(options.console);
        const network = options.network ? settings.network : ({ mode: 'none' } as const);
        await untilDone(echo, (signal) => runServe({ settings: { ...settings, network }, echo, log, signal }));
        return;
      }
      if (options.unattended) {
        const echo = consoleEcho(options.console);
        let settings: UnattendedSettings | null;
        try {
          settings = unattendedSettings(parameters);
          if (!settings) throw new UsageError(`no b365.action=restore|capture in ${options.cmdline}`);
        } catch (error) {
          // A script waits for the result line: a mistyped parameter must end with one too.
          echo.line(
            resultLine({
              status: 'failed',
              action: parameters.get('b365.action') ?? 'none',
              code: failureCode(error),
              exit: ExitCode.usage,
              message: errorMessage(error),
            }),
          );
          echo.close();
          const after = parameters.get('b365.after-failure');
          if (after === 'poweroff' || after === 'reboot') await finish(after);
          throw error;
        }
        const network = options.network ? settings.network : ({ mode: 'none' } as const);
        await untilDone(echo, (signal) => runUnattended({ settings: { ...settings, network }, echo, log, signal }));
        return;
      }
      const prompter = new Prompter(process.stdin, process.stdout);
      try {
        await runInteractive({
          prompter,
          log,
          parameters,
          network: options.network,
          includeLoopDevices: options.loopDevices,
        });
      } finally {
        prompter.close();
      }
    });
}
