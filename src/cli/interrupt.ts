// How a client command stops on SIGINT or SIGTERM: one process-wide AbortSignal that every
// long operation and HTTP request observes. The first signal aborts it (the command
// ends with its own message: what was kept, how to resume); if it has not ended within
// the deadline the process exits anyway; a second signal exits at once.
import { setMaxListeners } from 'node:events';
import { ExitCode } from '../core/errors.js';

/** Exit codes after an interruption, as shells report a death by that signal (128 + number). */
export const INTERRUPT_EXIT_CODES = { SIGINT: ExitCode.interrupted, SIGTERM: ExitCode.terminated } as const;
export type InterruptSignalName = keyof typeof INTERRUPT_EXIT_CODES;

/** Time a command has to wind down after the first signal. */
export const INTERRUPT_DEADLINE_MS = 5_000;

const controller = new AbortController();
// Every request in flight listens to it: dozens at once are expected, not a leak.
setMaxListeners(0, controller.signal);
let received: InterruptSignalName | null = null;
let installed = false;

/** The process-wide signal: aborted by the first SIGINT or SIGTERM once handling is installed. */
export const processSignal: AbortSignal = controller.signal;

/** The signal that interrupted the process, if one did. */
export function interruptedBy(): InterruptSignalName | null {
  return received;
}

export function interruptExitCode(): number {
  return received ? INTERRUPT_EXIT_CODES[received] : ExitCode.interrupted;
}

function onSignal(name: InterruptSignalName): void {
  if (received) {
    process.stderr.write(`\nb365: ${name} again: stopping now\n`);
    process.exit(INTERRUPT_EXIT_CODES[name]);
  }
  received = name;
  process.stderr.write(`\nb365: ${name} received: stopping (send it again to stop at once)\n`);
  controller.abort(Object.assign(new Error(`interrupted by ${name}`), { code: 'ABORT_ERR', name: 'AbortError' }));
  // unref: a command that winds down in time exits by itself, with its own code.
  setTimeout(() => {
    process.stderr.write(`b365: did not stop within ${INTERRUPT_DEADLINE_MS / 1000} s of ${name}: exiting\n`);
    process.exit(INTERRUPT_EXIT_CODES[name]);
  }, INTERRUPT_DEADLINE_MS).unref();
}

/** Take over SIGINT and SIGTERM for this process; calling it again changes nothing. */
export function installInterruptHandling(): AbortSignal {
  if (!installed) {
    installed = true;
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
  }
  return processSignal;
}
