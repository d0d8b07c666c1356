// How commands speak: JSON on stdout for scripts (`--json`), short human lines
// otherwise, and a progress bar on stderr when it is a terminal.
import cliProgress from 'cli-progress';
import { plural } from '../core/plural.js';
import { formatBytes } from '../core/units.js';

/** Whether a command already printed its JSON result (an error after it adds nothing). */
export let jsonPrinted = false;

export function printJson(value: unknown): void {
  jsonPrinted = true;
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A table as lines: upper-case headers, columns aligned, "-" for no value. */
export function tableLines(rows: Record<string, string | number | null>[], columns: string[]): string[] {
  const widths = columns.map((column) =>
    Math.max(column.length, ...rows.map((row) => String(row[column] ?? '-').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, position) => cell.padEnd(widths[position]!))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((column) => column.toUpperCase())),
    ...rows.map((row) => line(columns.map((column) => String(row[column] ?? '-')))),
  ];
}

export function printTable(rows: Record<string, string | number | null>[], columns: string[]): void {
  for (const line of tableLines(rows, columns)) process.stdout.write(`${line}\n`);
}

export interface Progress {
  update(done: number, total: number, detail?: string): void;
  stop(): void;
}

/** A byte progress bar with rate and ETA; silent when stderr is not a terminal or output is JSON. */
export function byteProgress(label: string, enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {doneText} of {totalText} | {rate}/s | ETA {eta_formatted} {detail}`,
      hideCursor: true,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  return {
    update(done, total, detail = '') {
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      const payload = {
        doneText: formatBytes(done),
        totalText: formatBytes(total),
        rate: formatBytes(done / seconds),
        detail,
      };
      if (!running) {
        bar.start(Math.max(total, 1), done, payload);
        running = true;
      } else {
        bar.setTotal(Math.max(total, 1));
        bar.update(done, payload);
      }
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}

export interface FileProgress {
  /** Bytes of file content written. */
  bytes(count: number): void;
  /** One more entry (file, link, symlink) done. */
  file(): void;
  stop(): void;
}

/**
 * Progress of a copy whose totals are known before it starts (a walk counted them): a
 * bar over the bytes with file counts beside it. Silent when disabled or stderr is not a terminal.
 */
export function fileProgress(label: string, enabled: boolean, total: { files: number; bytes: number }): FileProgress {
  if (!enabled || !process.stderr.isTTY) return { bytes() {}, file() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {filesDone} of {filesTotal} | {doneText} of {totalText} | {rate}/s | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 200,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  // A tree of empty files still moves the bar: then it counts files.
  const byBytes = total.bytes > 0;
  const started = Date.now();
  let files = 0;
  let bytes = 0;
  const payload = () => ({
    filesDone: files,
    filesTotal: plural(total.files, 'file'),
    doneText: formatBytes(bytes),
    totalText: formatBytes(total.bytes),
    rate: formatBytes(bytes / Math.max(0.001, (Date.now() - started) / 1000)),
  });
  bar.start(Math.max(1, byBytes ? total.bytes : total.files), 0, payload());
  const update = () => bar.update(byBytes ? bytes : files, payload());
  return {
    bytes(count) {
      bytes += count;
      update();
    },
    file() {
      files++;
      update();
    },
    stop() {
      bar.stop();
    },
  };
}
