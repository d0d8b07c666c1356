// Questions and answers on a console with node's readline: one line per answer, a
// default in brackets taken on Enter. Works the same on a terminal, a serial line and
// a pipe; when the input ends, the pending question fails instead of hanging.
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { InterruptedError } from '../core/errors.js';

export interface Choice<T> {
  label: string;
  value: T;
  /** Other words that pick this choice, besides its number. */
  keys?: string[];
}

export class Prompter {
  private readonly lines: string[] = [];
  private waiting: { resolve(line: string): void; reject(error: Error): void } | null = null;
  private ended = false;
  private readonly reader: readline.Interface;

  constructor(
    input: Readable,
    readonly output: Writable,
  ) {
    this.reader = readline.createInterface({ input, terminal: false });
    this.reader.on('line', (line) => {
      if (this.waiting) {
        const { resolve } = this.waiting;
        this.waiting = null;
        resolve(line);
      } else this.lines.push(line);
    });
    this.reader.on('close', () => {
      this.ended = true;
      if (this.waiting) {
        const { reject } = this.waiting;
        this.waiting = null;
        reject(new InterruptedError('the console input ended'));
      }
    });
  }

  say(text = ''): void {
    this.output.write(`${text}\n`);
  }

  private nextLine(): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(new InterruptedError('the console input ended'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  /** Ask until the answer passes `check`, which returns an error message or null. */
  async ask(
    question: string,
    options: { default?: string; check?: (answer: string) => string | null } = {},
  ): Promise<string> {
    for (;;) {
      this.output.write(options.default ? `${question} [${options.default}]: ` : `${question}: `);
      const line = (await this.nextLine()).trim();
      const answer = line === '' && options.default !== undefined ? options.default : line;
      const problem = answer === '' ? 'please answer' : (options.check?.(answer) ?? null);
      if (!problem) return answer;
      this.say(`  ${problem}`);
    }
  }

  /** A numbered list; the answer is a number or one of a choice's keys; defaultIndex -1 means no default. */
  async choose<T>(question: string, choices: Choice<T>[], defaultIndex = 0): Promise<T> {
    for (const [index, choice] of choices.entries()) this.say(`  ${String(index + 1).padStart(2)}) ${choice.label}`);
    const find = (answer: string) => {
      const number = Number(answer);
      if (Number.isInteger(number) && number >= 1 && number <= choices.length) return choices[number - 1];
      return choices.find((choice) => choice.keys?.includes(answer));
    };
    const answer = await this.ask(question, {
      default: defaultIndex >= 0 && defaultIndex < choices.length ? String(defaultIndex + 1) : undefined,
      check: (text) => (find(text) ? null : `answer a number from 1 to ${choices.length}`),
    });
    return find(answer)!.value;
  }

  close(): void {
    this.reader.close();
  }
}
