// The bounded load run of `make bench` (section `load`): B365_LOAD_CLIENTS clients
// (default 16) on 127.0.0.1 mix images of small generated disks, restores and file reads
// for B365_LOAD_SECONDS (default 600) while garbage collection, prune and content
// verification run in between. Every request passes a relay that times it. Reported:
// throughput, p50/p99 request latency, the server's peak RSS, errors and lost images
// (each machine's latest image restored and compared with its disk); targets 0 and 0.
import fs from 'node:fs/promises';
import path from 'node:path';
import { b3sum } from '../test/helpers/b3sum.js';
import { b365 } from '../test/helpers/cli.js';
import { buildFaultDisk, changeDisk, type FaultDisk, startRelay } from '../test/fault/helpers.js';
import { startServer } from '../test/helpers/server.js';
import type { BenchContext } from './disk.js';
import { processUsage, renderTable } from './measure.js';

interface Client {
  machine: string;
  disk: FaultDisk;
  /** b3sum of every state the disk was imaged in. */
  states: Set<string>;
  latest: string | null;
}

interface Tally {
  operations: Record<string, { count: number; errors: number; bytes: number }>;
  errors: string[];
  latencies: number[];
  requestsByStatus: Record<string, number>;
}

const percentile = (sorted: number[], fraction: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]! : 0;

function count(tally: Tally, operation: string, ok: boolean, bytes: number, error?: string): void {
  tally.operations[operation] ??= { count: 0, errors: 0, bytes: 0 };
  const entry = tally.operations[operation];
  entry.count++;
  entry.bytes += bytes;
  if (!ok) {
    entry.errors++;
    tally.errors.push(`${operation}: ${error ?? ''}`.slice(0, 400));
  }
}

/** One client's loop: mostly images (with a changed disk now and then), restores and file reads. */
async function clientLoop(
  client: Client,
  env: Record<string, string>,
  work: string,
  deadline: number,
  tally: Tally,
  round: { value: number },
): Promise<void> {
  const scope = { teardown: () => undefined };
  while (Date.now() < deadline) {
    const roll = (round.value++ * 7919 + client.machine.length) % 10;
    if (roll < 4 || !client.latest) {
      if (client.latest && roll % 2 === 0) await changeDisk(scope, client.disk, 1);
      const digest = await b3sum(client.disk.file);
      client.states.add(digest);
      const result = await b365(['image', client.disk.file, '--machine', client.machine, '--json'], { env });
      count(tally, 'image', result.exitCode === 0, result.json?.bytesRead ?? 0, result.stderr);
      if (result.exitCode === 0) client.latest = result.json.image;
    } else if (roll < 7) {
      const target = path.join(work, `${client.machine}-restore.img`);
      const result = await b365(['restore', client.latest, '--to', target, '--yes', '--json'], { env });
      const whole = result.exitCode === 0 && result.json?.verified === true;
      count(tally, 'restore', whole, result.json?.bytesWritten ?? 0, result.stderr);
      await fs.rm(target, { force: true });
    } else {
      const listing = await b365(['files', 'ls', client.latest, '/'], { env });
      count(tally, 'files ls', listing.exitCode === 0, 0, listing.stderr);
      const out = path.join(work, `${client.machine}-files`);
      const got = await b365(['files', 'get', client.latest, '/notes.txt', '/etc', '--to', out], { env });
      count(tally, 'files get', got.exitCode === 0, 0, got.stderr);
      await fs.rm(out, { recursive: true, force: true });
    }
  }
}

/** Garbage collection, prune and content verification, one after the other, until the deadline. */
async function maintenanceLoop(env: Record<string, string>, deadline: number, tally: Tally): Promise<void> {
  while (Date.now() < deadline) {
    const gc = await b365(['gc', '--grace', '0s', '--json'], { env });
    count(tally, 'gc', gc.exitCode === 0 || gc.exitCode === 5, gc.json?.report?.bytesReclaimed ?? 0, gc.stderr);
    const prune = await b365(['prune', '--json'], { env });
    count(tally, 'prune', prune.exitCode === 0, 0, prune.stderr);
    const verify = await b365(['verify', '--all', '--level', 'content', '--json'], { env });
    count(
      tally,
      'verify',
      verify.exitCode === 0,
      verify.json?.report?.summary?.bytesRead ?? 0,
      JSON.stringify(verify.json?.report?.summary ?? verify.stderr),
    );
  }
}

export async function benchLoad(context: BenchContext): Promise<void> {
  const { scope, work, log } = context;
  const seconds = Number(process.env.B365_LOAD_SECONDS ?? 600);
  const clientCount = Number(process.env.B365_LOAD_CLIENTS ?? 16);
  const server = await startServer(scope);
  const tally: Tally = { operations: {}, errors: [], latencies: [], requestsByStatus: {} };
  const relay = await startRelay(scope, () => server.url, {
    answered(_request, status, milliseconds) {
      tally.latencies.push(milliseconds);
      const kind = `${Math.floor(status / 100)}xx`;
      tally.requestsByStatus[kind] = (tally.requestsByStatus[kind] ?? 0) + 1;
    },
  });
  const env = { ...server.env, B365_SERVER: relay.url };
  const directory = path.join(work, 'load');
  await fs.mkdir(directory, { recursive: true });
  log(`load: building ${clientCount} disks`);
  const clients: Client[] = [];
  for (let index = 0; index < clientCount; index++) {
    const machine = `load-${String(index).padStart(2, '0')}`;
    clients.push({
      machine,
      disk: await buildFaultDisk(scope, directory, machine, { dataMiB: 8 }),
      states: new Set(),
      latest: null,
    });
  }
  const policy = await b365(['policy', 'set', 'default', '--keep-last', '3'], { env: server.env });
  if (policy.exitCode !== 0) throw new Error(`load: cannot set retention: ${policy.stderr}`);

  log(`load: ${clientCount} clients for ${seconds} s`);
  const started = Date.now();
  const deadline = started + seconds * 1000;
  const round = { value: 0 };
  let peakRssMiB = 0;
  const sampler = setInterval(() => {
    void processUsage(server.process.pid!).then(
      (usage) => {
        peakRssMiB = Math.max(peakRssMiB, usage.peakRssMiB);
      },
      () => undefined,
    );
  }, 1000);
  await Promise.all([
    ...clients.map((client) => clientLoop(client, env, directory, deadline, tally, round)),
    maintenanceLoop(env, deadline, tally),
  ]);
  clearInterval(sampler);
  peakRssMiB = Math.max(peakRssMiB, (await processUsage(server.process.pid!)).peakRssMiB);
  const elapsed = (Date.now() - started) / 1000;

  // Lost: a machine's latest image that does not restore to a state its disk was in.
  let lost = 0;
  const verify = await b365(['verify', '--all', '--level', 'content', '--json'], { env: server.env });
  const failedImages = verify.json?.report?.summary?.failed ?? -1;
  for (const client of clients) {
    if (!client.latest) continue;
    const target = path.join(directory, `${client.machine}-final.img`);
    const restore = await b365(['restore', `${client.machine}@latest`, '--to', target, '--yes', '--json'], {
      env: server.env,
    });
    if (restore.exitCode !== 0 || !client.states.has(await b3sum(target).catch(() => ''))) lost++;
    await fs.rm(target, { force: true });
  }
  await server.stop();

  const sorted = [...tally.latencies].sort((a, b) => a - b);
  const megabytes = Object.values(tally.operations).reduce((sum, entry) => sum + entry.bytes, 0) / 1e6;
  const rows = Object.entries(tally.operations).map(([operation, entry]) => [
    operation,
    String(entry.count),
    String(entry.errors),
    (entry.bytes / 1e6).toFixed(0),
    (entry.count / elapsed).toFixed(2),
  ]);
  process.stdout.write(
    `\n## Load: ${clientCount} clients, ${elapsed.toFixed(0)} s (images, restores, file reads; gc, prune, verify in between)\n\n`,
  );
  process.stdout.write(`${renderTable(['operation', 'runs', 'errors', 'MB', 'per second'], rows)}\n\n`);
  process.stdout.write(
    `requests: ${sorted.length} (${Object.entries(tally.requestsByStatus)
      .map(([kind, number]) => `${kind} ${number}`)
      .join(
        ', ',
      )}); latency p50 ${percentile(sorted, 0.5).toFixed(1)} ms, p99 ${percentile(sorted, 0.99).toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms\n`,
  );
  process.stdout.write(
    `throughput: ${(megabytes / elapsed).toFixed(1)} MB/s of disk read, written or verified; server peak RSS ${peakRssMiB.toFixed(0)} MiB\n`,
  );
  process.stdout.write(
    `errors: ${tally.errors.length} (target 0); images failing verification at the end: ${failedImages}; lost (latest image not restoring to its disk): ${lost} (target 0)\n`,
  );
  for (const error of tally.errors.slice(0, 10)) process.stdout.write(`  ${error.replace(/\s+/g, ' ')}\n`);
}
