// Measuring commands for benchmarks: wall time, CPU seconds and peak RSS of a child
// process (GNU time), and of a long-running process (from /proc at the end), with the
// machine's load average during each step, since the machine is shared.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

export interface Measurement {
  label: string;
  wallSeconds: number;
  cpuSeconds: number;
  peakRssMiB: number;
  bytes?: number;
  note?: string;
  /** Mean 1-minute load average while the step ran. */
  load?: number;
}

/** The header of a table of `measurementCells` rows; `bytes` names that optional column. */
export function measurementHeader(bytes?: string): string[] {
  const head = ['step', 'wall s', 'CPU s', 'server CPU s', 'peak RSS MiB', 'server RSS MiB'];
  return [...head, ...(bytes ? [bytes] : []), 'load', 'attempts', 'what'];
}

/**
 * One row of a measurement table: step, wall, CPU, the server's CPU and RSS when the
 * step ran against our server, peak RSS, optionally the bytes moved, load, attempts, what.
 */
export function measurementCells(row: Measurement, what: string, options: { bytes?: boolean } = {}): string[] {
  const extra = row as Measurement & { serverCpuSeconds?: number; serverPeakRssMiB?: number; attempts?: string };
  return [
    row.label,
    row.wallSeconds.toFixed(1),
    row.cpuSeconds.toFixed(1),
    extra.serverCpuSeconds?.toFixed(1) ?? '',
    row.peakRssMiB.toFixed(0),
    extra.serverPeakRssMiB?.toFixed(0) ?? '',
    ...(options.bytes ? [((row.bytes ?? 0) / 2 ** 20).toFixed(1)] : []),
    (row.load ?? 0).toFixed(1),
    extra.attempts ?? '',
    what,
  ];
}

/** The 1-minute load average. */
export async function loadAverage(): Promise<number> {
  return Number((await fs.readFile('/proc/loadavg', 'utf8')).split(' ')[0]);
}

/** Samples the load average every second until stopped; returns the mean. */
export function sampleLoad(): { stop(): Promise<number> } {
  const samples: number[] = [];
  const take = () =>
    loadAverage().then(
      (load) => void samples.push(load),
      () => undefined,
    );
  void take();
  const timer = setInterval(take, 1000);
  return {
    async stop() {
      clearInterval(timer);
      await take();
      return samples.reduce((sum, load) => sum + load, 0) / samples.length;
    },
  };
}

/** Run a shell command under GNU time. */
export async function measure(
  label: string,
  command: string,
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Measurement & { stdout: string }> {
  const timeFile = path.join(os.tmpdir(), `b365-time-${process.pid}-${Date.now()}`);
  const load = sampleLoad();
  const started = process.hrtime.bigint();
  const result = await execa('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, 'sh', '-c', command], {
    env: options.env,
    cwd: options.cwd,
    reject: false,
    maxBuffer: 1 << 30,
  });
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const meanLoad = await load.stop();
  const [, user, system, rss] = (await fs.readFile(timeFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  await fs.rm(timeFile, { force: true });
  if (result.exitCode !== 0)
    throw new Error(`${label}: \`${command}\` failed (${result.exitCode}): ${String(result.stderr).slice(-2000)}`);
  return {
    label,
    wallSeconds: wall,
    cpuSeconds: user! + system!,
    peakRssMiB: rss! / 1024,
    load: meanLoad,
    stdout: String(result.stdout),
  };
}

/** CPU seconds and peak RSS of a running process, from /proc. */
export async function processUsage(pid: number): Promise<{ cpuSeconds: number; peakRssMiB: number }> {
  const stat = (await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, peakRssMiB: hwm / 1024 };
}

export function formatTable(rows: Measurement[], baseline?: string): string {
  const header = ['step', 'wall s', 'CPU s', 'peak RSS MiB', 'MB/s', 'bytes', 'load', 'note'];
  const base = baseline ? rows.find((row) => row.label === baseline) : undefined;
  const lines = rows.map((row) => [
    row.label,
    row.wallSeconds.toFixed(2),
    row.cpuSeconds.toFixed(2),
    row.peakRssMiB.toFixed(0),
    row.bytes ? (row.bytes / 1e6 / row.wallSeconds).toFixed(0) : '',
    row.bytes ? String(row.bytes) : '',
    row.load === undefined ? '' : row.load.toFixed(1),
    row.note ??
      (base && row !== base ? `${(row.wallSeconds / base.wallSeconds).toFixed(2)}x wall of ${base.label}` : ''),
  ]);
  return renderTable(header, lines);
}

/** Columns padded to line up, as plain text. */
export function renderTable(header: string[], lines: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)),
  );
  const format = (cells: string[]) =>
    header
      .map((_, column) => (cells[column] ?? '').padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  return [format(header), ...lines.map(format)].join('\n');
}

export interface RepeatPolicy {
  /** Whether a step that ran while the machine was this busy should run again. */
  wantsRepeat(row: Measurement, ownCpuSeconds: number): boolean;
}

/** Runnable work of other processes during a step: the load average minus our own share. */
export function otherLoad(row: Measurement, ownCpuSeconds: number): number {
  return Math.max(0, (row.load ?? 0) - ownCpuSeconds / row.wallSeconds);
}

/**
 * Run a step, and on a busy machine run it again (each attempt must set up its own
 * state), keeping the fastest attempt: other processes only ever add time. `discard`
 * releases what a slower attempt left behind. The note lists every attempt.
 */
export async function bestOf<T extends Measurement>(
  policy: RepeatPolicy,
  attempt: (round: number) => Promise<T>,
  options: { ownCpu?: (row: T) => number; discard?: (row: T) => Promise<void>; maxAttempts?: number } = {},
): Promise<T & { attempts: string }> {
  const ownCpu = options.ownCpu ?? ((row: T) => row.cpuSeconds);
  const tries: T[] = [];
  for (let round = 0; round < (options.maxAttempts ?? 2); round++) {
    const row = await attempt(round);
    tries.push(row);
    if (!policy.wantsRepeat(row, ownCpu(row))) break;
  }
  const best = tries.reduce((fastest, row) => (row.wallSeconds < fastest.wallSeconds ? row : fastest));
  for (const row of tries) if (row !== best) await options.discard?.(row);
  const attempts = tries
    .map((row) => `${row.wallSeconds.toFixed(1)} s at load ${(row.load ?? 0).toFixed(1)}`)
    .join(', ');
  return { ...best, attempts };
}
