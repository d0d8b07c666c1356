// Where the rescue program speaks: its own output, plus every console the kernel was
// told to use (console= on the command line: the screen and the serial line), so an
// unattended run can be followed on a monitor or by a script reading the serial port.
import fs from 'node:fs';
import type { Writable } from 'node:stream';

export class ConsoleEcho {
  private readonly descriptors: number[] = [];

  constructor(
    private readonly output: Writable,
    consoles: string[],
  ) {
    for (const path of consoles) {
      try {
        this.descriptors.push(fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NOCTTY | fs.constants.O_APPEND));
      } catch {
        // A console that cannot be opened (no serial port on this machine) is skipped.
      }
    }
  }

  line(text: string): void {
    this.output.write(`${text}\n`);
    for (const descriptor of this.descriptors) {
      try {
        // One write per line, so lines from other writers never land inside it.
        fs.writeSync(descriptor, `${text}\r\n`);
      } catch {
        // A console that went away must not stop a restore.
      }
    }
  }

  close(): void {
    for (const descriptor of this.descriptors.splice(0)) fs.closeSync(descriptor);
  }
}

/** The kernel's active consoles, e.g. /dev/tty0 and /dev/ttyS0. */
export function activeConsoles(): string[] {
  try {
    return fs
      .readFileSync('/sys/class/tty/console/active', 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((name) => `/dev/${name}`);
  } catch {
    return [];
  }
}
