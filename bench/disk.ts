// Benchmark of imaging a whole disk: the generated 4 GiB GPT disk imaged in full, then
// again after a scripted day of changes, next to partclone (+ lz4) and restic reading
// the raw disk from stdin, all in the same run on the same cached disk.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { CLI_MAIN } from '../test/helpers/cli.js';
import { attachLoop, type LoopDevice } from '../test/helpers/disk.js';
import { startServer, type TestServer } from '../test/helpers/server.js';
import { type BenchDisk, benchDisk } from './bench-disk.js';
import {
  type Measurement,
  type RepeatPolicy,
  bestOf,
  measure,
  measurementCells,
  measurementHeader,
  processUsage,
  renderTable,
} from './measure.js';

interface Scope {
  teardown(fn: () => unknown): void;
}

export interface BenchContext {
  scope: Scope;
  work: string;
  policy: RepeatPolicy;
  log(line: string): void;
}

/** A b365 step: the client under GNU time, the server's CPU from /proc around it. */
export interface B365Row extends Measurement {
  serverCpuSeconds: number;
  serverPeakRssMiB: number;
  report: CaptureReportJson;
}

/** The fields of `b365 image --json` the benchmarks read. */
export interface CaptureReportJson {
  image: string;
  bytesRead: number;
  bytesUploaded: number;
  chunksUploaded: number;
  chunksReused: number;
}

/** What the disk benchmark leaves for the restore benchmark. */
export interface DiskArtifacts {
  disk: BenchDisk;
  b365: {
    server: TestServer;
    env: Record<string, string>;
    machine: string;
    fullImage: string;
    rows?: { full: B365Row; incremental: B365Row; latestImage: string };
  };
  restic: { repository: string; env: Record<string, string>; fullSnapshot: string };
  partclone: { ext: string; vfat: string; table: string };
}

/** A server with its repository (and its log, next to it) in `directory`. */
export async function startServerIn(scope: Scope, directory: string): Promise<TestServer> {
  await fs.mkdir(directory, { recursive: true });
  return startServer(scope, { repo: path.join(directory, 'repo') });
}

const b365Command = (args: string) => `${process.execPath} ${CLI_MAIN} ${args}`;

export function clientEnv(server: TestServer): Record<string, string> {
  return { ...server.env, B365_LOG_LEVEL: 'warn' };
}

/** Run a b365 client command against `server`, with the server's CPU over the same time. */
export async function measureB365(
  label: string,
  server: TestServer,
  args: string,
): Promise<Omit<B365Row, 'report'> & { stdout: string }> {
  const before = await processUsage(server.process.pid!);
  const row = await measure(label, b365Command(args), { env: clientEnv(server) });
  const after = await processUsage(server.process.pid!);
  return { ...row, serverCpuSeconds: after.cpuSeconds - before.cpuSeconds, serverPeakRssMiB: after.peakRssMiB };
}

export async function b365Image(
  label: string,
  server: TestServer,
  source: string,
  machine: string,
  extra = '',
): Promise<B365Row> {
  const row = await measureB365(label, server, `image ${source} --machine ${machine} --json ${extra}`);
  const report = JSON.parse(row.stdout) as CaptureReportJson;
  return { ...row, bytes: report.bytesUploaded, report };
}

export function resticEnv(repository: string): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    RESTIC_REPOSITORY: repository,
    RESTIC_PASSWORD: 'backup365-bench',
    RESTIC_PROGRESS_FPS: '0.2',
  };
}

interface ResticRow extends Measurement {
  dataAdded: number;
  storedAdded: number;
  snapshot: string;
}

async function directoryBytes(directory: string): Promise<number> {
  return Number((await execa('du', ['-sb', directory])).stdout.split('\t')[0]);
}

async function listFiles(directory: string): Promise<Set<string>> {
  const result = await execa('find', [directory, '-type', 'f'], { maxBuffer: 1 << 28 });
  return new Set(String(result.stdout).split('\n').filter(Boolean));
}

/** `restic backup --stdin` of a raw disk: restic's own summary says what it added. */
async function resticBackup(label: string, repository: string, image: string): Promise<ResticRow> {
  const storedBefore = await directoryBytes(repository);
  const row = await measure(
    label,
    `restic --no-cache backup --stdin --stdin-filename disk.img --host bench --json < ${image}`,
    { env: resticEnv(repository) },
  );
  const summary = row.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { message_type: string; data_added?: number; snapshot_id?: string })
    .find((message) => message.message_type === 'summary');
  if (!summary?.snapshot_id) throw new Error(`${label}: restic printed no summary: ${row.stdout.slice(-500)}`);
  const storedAdded = (await directoryBytes(repository)) - storedBefore;
  return { ...row, bytes: storedAdded, dataAdded: summary.data_added ?? 0, storedAdded, snapshot: summary.snapshot_id };
}

async function resticInit(repository: string): Promise<void> {
  await fs.rm(repository, { recursive: true, force: true });
  await execa('restic', ['--no-cache', 'init'], { env: resticEnv(repository) });
}

/** Remove what a step added to a repository directory, so it can run again from the same state. */
async function rollBack(directory: string, kept: Set<string>, saved: Map<string, string>): Promise<void> {
  for (const file of await listFiles(directory))
    if (!kept.has(file) && !saved.has(file)) await fs.rm(file, { force: true });
  for (const [file, copy] of saved) await fs.copyFile(copy, file);
}

const mib = (bytes: number) => (bytes / (1 << 20)).toFixed(1);
const ratio = (ours: number, theirs: number) => (ours / theirs).toFixed(2);

/** The partclone command that images the disk's ext4 (through lz4 -1) and FAT partitions. */
export async function partcloneImages(
  loop: LoopDevice,
  directory: string,
): Promise<{ command: string; ext: string; vfat: string }> {
  await fs.mkdir(directory, { recursive: true });
  const ext = path.join(directory, 'p3.extfs.pcl.lz4');
  const vfat = path.join(directory, 'p1.vfat.pcl');
  const log = path.join(directory, 'partclone.log');
  // partclone prints a progress line on stderr many times a second: keep it out of the pipe.
  const command = `partclone.extfs -c -s ${loop.partition(3)} -o - -L ${log} 2>/dev/null | lz4 -1 -q > ${ext} && partclone.vfat -c -s ${loop.partition(1)} -o ${vfat} -L ${log} 2>/dev/null`;
  return { command, ext, vfat };
}

export async function benchDiskImaging(
  context: BenchContext,
): Promise<{ rows: Measurement[]; checks: string[]; artifacts: DiskArtifacts }> {
  const { scope, work, policy } = context;
  const disk = await benchDisk(context.log);
  const { facts } = disk;
  // Every tool reads the disks from the page cache, as they would on a second run.
  await execa('sh', ['-c', `cat ${disk.before} ${disk.after} > /dev/null`]);

  // partclone reads partitions: the disk as a read-only loop device.
  const loop = await attachLoop(scope, disk.before, { readOnly: true });
  const partclone = await bestOf(
    policy,
    async (round) => {
      const directory = path.join(work, `partclone-${round}`);
      const { command, ext, vfat } = await partcloneImages(loop, directory);
      const row = await measure('partclone.extfs | lz4 -1 + partclone.vfat', command);
      // The pipeline's status is lz4's: a partclone that failed shows as a short image.
      const extBytes = (await fs.stat(ext)).size;
      if (extBytes < facts.ext4UsedBytes / 4) throw new Error(`partclone image ${ext} is only ${extBytes} bytes`);
      return { ...row, bytes: extBytes + (await fs.stat(vfat)).size, directory, ext, vfat };
    },
    { discard: (row) => fs.rm(row.directory, { recursive: true, force: true }) },
  );
  const table = (await execa('sfdisk', ['--dump', disk.before])).stdout;
  await loop.detach();

  // restic: a fresh repository per attempt for the full backup.
  const resticFull = await bestOf(
    policy,
    async (round) => {
      const repository = path.join(work, `restic-${round}`);
      await resticInit(repository);
      return { ...(await resticBackup('restic backup --stdin, full', repository, disk.before)), repository };
    },
    { discard: (row) => fs.rm(row.repository, { recursive: true, force: true }) },
  );

  // b365: a fresh server and repository per attempt for the full image.
  const machine = 'bench-disk';
  const b365Full = await bestOf(
    policy,
    async (round) => {
      const server = await startServerIn(scope, path.join(work, `b365-${round}`));
      return { ...(await b365Image('b365 image, full', server, disk.before, machine)), server };
    },
    {
      ownCpu: (row) => row.cpuSeconds + row.serverCpuSeconds,
      discard: async (row) => {
        await row.server.stop();
        await fs.rm(path.dirname(row.server.repo), { recursive: true, force: true });
      },
    },
  );
  const server = b365Full.server;

  // Incrementals: a repeat first puts the repository back as the full backup left it.
  const resticKept = await listFiles(resticFull.repository);
  const resticIncremental = await bestOf(policy, async (round) => {
    if (round > 0) await rollBack(resticFull.repository, resticKept, new Map());
    return resticBackup('restic backup --stdin, incremental', resticFull.repository, disk.after);
  });

  await server.stop();
  const catalogCopies = new Map<string, string>();
  for (const name of await fs.readdir(server.repo)) {
    if (!name.startsWith('catalog.sqlite')) continue;
    const copy = path.join(work, `catalog-after-full-${name}`);
    await fs.copyFile(path.join(server.repo, name), copy);
    catalogCopies.set(path.join(server.repo, name), copy);
  }
  const b365Kept = await listFiles(server.repo);
  await server.restart();
  // A repeat replaces the first incremental: the repository keeps the last one run.
  let latestImage = '';
  const b365Incremental = await bestOf(
    policy,
    async (round) => {
      if (round > 0) {
        await server.stop();
        await rollBack(server.repo, b365Kept, catalogCopies);
        await server.restart();
      }
      const row = await b365Image('b365 image, incremental', server, disk.after, machine);
      latestImage = row.report.image;
      return row;
    },
    { ownCpu: (row) => row.cpuSeconds + row.serverCpuSeconds },
  );

  const rows: Measurement[] = [partclone, resticFull, b365Full, resticIncremental, b365Incremental];
  const lines = [
    [partclone, `${mib(partclone.bytes!)} MiB stored (ext4 image through lz4 -1, FAT image plain)`],
    [
      resticFull,
      `${mib(resticFull.dataAdded)} MiB added (restic data_added), ${mib(resticFull.storedAdded)} MiB stored`,
    ],
    [
      b365Full,
      `${mib(b365Full.report.bytesUploaded)} MiB uploaded in ${b365Full.report.chunksUploaded} chunks; read ${mib(b365Full.report.bytesRead)} MiB`,
    ],
    [
      resticIncremental,
      `${mib(resticIncremental.dataAdded)} MiB added (restic data_added), ${mib(resticIncremental.storedAdded)} MiB stored`,
    ],
    [
      b365Incremental,
      `${mib(b365Incremental.report.bytesUploaded)} MiB uploaded in ${b365Incremental.report.chunksUploaded} chunks; ${b365Incremental.report.chunksReused} reused`,
    ],
  ] as const;
  const header = measurementHeader('MiB sent/stored');
  const tableLines = lines.map(([row, what]) => measurementCells(row, what, { bytes: true }));

  const checks = [
    target(
      'full image wall vs partclone+lz4',
      b365Full.wallSeconds / partclone.wallSeconds,
      0.6,
      `${ratio(b365Full.wallSeconds, partclone.wallSeconds)}x`,
    ),
    target(
      'full image wall vs restic full',
      b365Full.wallSeconds / resticFull.wallSeconds,
      1.0,
      `${ratio(b365Full.wallSeconds, resticFull.wallSeconds)}x`,
    ),
    target(
      'incremental wall vs restic incremental',
      b365Incremental.wallSeconds / resticIncremental.wallSeconds,
      0.5,
      `${ratio(b365Incremental.wallSeconds, resticIncremental.wallSeconds)}x`,
    ),
    target(
      'incremental uploaded vs restic data_added',
      b365Incremental.report.bytesUploaded / resticIncremental.dataAdded,
      1.0,
      `${mib(b365Incremental.report.bytesUploaded)} / ${mib(resticIncremental.dataAdded)} MiB = ${ratio(b365Incremental.report.bytesUploaded, resticIncremental.dataAdded)}x (vs restic's stored growth ${mib(resticIncremental.storedAdded)} MiB: ${ratio(b365Incremental.report.bytesUploaded, resticIncremental.storedAdded)}x)`,
    ),
    target('client peak RSS, full (MiB)', b365Full.peakRssMiB, 150, `${b365Full.peakRssMiB.toFixed(0)} MiB`),
    target(
      'client peak RSS, incremental (MiB)',
      b365Incremental.peakRssMiB,
      150,
      `${b365Incremental.peakRssMiB.toFixed(0)} MiB`,
    ),
    `CPU: full image ${(b365Full.cpuSeconds + b365Full.serverCpuSeconds).toFixed(1)} s (client ${b365Full.cpuSeconds.toFixed(1)} + server ${b365Full.serverCpuSeconds.toFixed(1)}) vs restic ${resticFull.cpuSeconds.toFixed(1)} s and partclone+lz4 ${partclone.cpuSeconds.toFixed(1)} s; incremental ${(b365Incremental.cpuSeconds + b365Incremental.serverCpuSeconds).toFixed(1)} s vs restic ${resticIncremental.cpuSeconds.toFixed(1)} s`,
  ];
  process.stdout.write(
    [
      '',
      `## Disk image: 4 GiB GPT disk (${describeDisk(disk)})`,
      renderTable(header, tableLines),
      ...checks.map((line) => `- ${line}`),
      '',
    ].join('\n'),
  );

  return {
    rows,
    checks,
    artifacts: {
      disk,
      b365: {
        server,
        env: clientEnv(server),
        machine,
        fullImage: b365Full.report.image,
        rows: { full: b365Full, incremental: b365Incremental, latestImage },
      },
      restic: {
        repository: resticFull.repository,
        env: resticEnv(resticFull.repository),
        fullSnapshot: resticFull.snapshot,
      },
      partclone: { ext: partclone.ext, vfat: partclone.vfat, table },
    },
  };
}

function describeDisk(disk: BenchDisk): string {
  const { facts } = disk;
  return `ESP ${mib(facts.espUsedBytes)} MiB used, swap, ext4 ${mib(facts.ext4UsedBytes)} of ${mib(facts.ext4SizeBytes)} MiB used; day: ${mib(facts.day.editedInPlaceBytes)} MiB edited in place, ${mib(facts.day.newBytes + facts.day.replacedBytes)} MiB new or replaced, ${mib(facts.day.deletedBytes)} MiB deleted`;
}

/** "name: detail (target <= limit): met|MISSED". */
export function target(name: string, value: number, limit: number, detail: string, atLeast = false): string {
  const met = atLeast ? value >= limit : value <= limit;
  return `${name}: ${detail} (target ${atLeast ? '>=' : '<='} ${limit}): ${met ? 'met' : 'MISSED'}`;
}

/** The full backups of every tool, unmeasured: for the restore benchmark run on its own. */
export async function prepareArtifacts(context: BenchContext): Promise<DiskArtifacts> {
  const { scope, work } = context;
  const disk = await benchDisk(context.log);
  context.log('preparing full backups of the benchmark disk with each tool (not measured)');
  const loop = await attachLoop(scope, disk.before, { readOnly: true });
  const { command, ext, vfat } = await partcloneImages(loop, path.join(work, 'partclone-prepared'));
  await execa('sh', ['-c', command]);
  const table = (await execa('sfdisk', ['--dump', disk.before])).stdout;
  await loop.detach();
  const repository = path.join(work, 'restic-prepared');
  await resticInit(repository);
  const restic = await resticBackup('restic backup', repository, disk.before);
  const server = await startServerIn(scope, path.join(work, 'b365-prepared'));
  const machine = 'bench-disk';
  const full = await b365Image('b365 image', server, disk.before, machine);
  return {
    disk,
    b365: { server, env: clientEnv(server), machine, fullImage: full.report.image },
    restic: { repository, env: resticEnv(repository), fullSnapshot: restic.snapshot },
    partclone: { ext, vfat, table },
  };
}
