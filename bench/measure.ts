// Measuring commands for benchmarks: wall time, CPU seconds and peak RSS of a child
// process (GNU time), and of a long-running process (from /proc at the end).
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
}

/** Run a shell command under GNU time. */
export async function measure(label: string, command: string, options: { env?: Record<string, string>; cwd?: string } = {}): Promise<Measurement & { stdout: string }> {
  const timeFile = path.join(os.tmpdir(), `b365-time-${process.pid}-${Date.now()}`);
  const started = process.hrtime.bigint();
  const result = await execa('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, 'sh', '-c', command], { env: options.env, cwd: options.cwd, reject: false, maxBuffer: 1 << 30 });
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const [, user, system, rss] = (await fs.readFile(timeFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  await fs.rm(timeFile, { force: true });
  if (result.exitCode !== 0) throw new Error(`${label}: \`${command}\` failed (${result.exitCode}): ${String(result.stderr).slice(-2000)}`);
  return { label, wallSeconds: wall, cpuSeconds: user! + system!, peakRssMiB: rss! / 1024, stdout: String(result.stdout) };
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
  const header = ['step', 'wall s', 'CPU s', 'peak RSS MiB', 'MB/s', 'bytes', 'note'];
  const base = baseline ? rows.find((row) => row.label === baseline) : undefined;
  const lines = rows.map((row) => [
    row.label,
    row.wallSeconds.toFixed(2),
    row.cpuSeconds.toFixed(2),
    row.peakRssMiB.toFixed(0),
    row.bytes ? (row.bytes / 1e6 / row.wallSeconds).toFixed(0) : '',
    row.bytes ? String(row.bytes) : '',
    row.note ?? (base && row !== base ? `${(row.wallSeconds / base.wallSeconds).toFixed(2)}x wall of ${base.label}` : ''),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  const format = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  return [format(header), ...lines.map(format)].join('\n');
}
