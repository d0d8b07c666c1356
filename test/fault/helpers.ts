// What every fault scenario shares: small real disks (GPT, FAT16 + ext4 filled with
// incompressible files), a real server, an HTTP relay that lets a test act at an exact
// request (kill the server as a commit arrives, drop the answer), and the closing check
// that nothing committed is lost or silently wrong.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import type { Test } from 'tap';
import { PinnedAgent } from '../../src/client/tls-pin.js';
import { b3sum } from '../helpers/b3sum.js';
import { b365, CLI_MAIN, type CliResult } from '../helpers/cli.js';
import { attachLoop, makeImageFile, MiB, sfdisk } from '../helpers/disk.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { assertStoreIntact, listFiles, storedChunks } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Poll `check` until it returns a value other than undefined/false, or fail naming `what`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

const FAT_START = 1 * MiB;
const FAT_SIZE = 16 * MiB;
const EXT_START = FAT_START + FAT_SIZE;
const EXT_BLOCK = 4096;

export interface FaultDisk {
  file: string;
  /** Byte range of the ext4 partition, for offset loops. */
  ext: { offset: number; size: number };
}

/**
 * A GPT disk of `dataMiB` incompressible MiB plus 48 MiB: FAT16 (a few files copied in
 * with mtools) and ext4 made by `mkfs.ext4 -d`, so free space is zeros and a restored
 * disk must hash exactly like its source.
 */
export async function buildFaultDisk(
  t: Teardown,
  directory: string,
  name: string,
  options: { dataMiB?: number } = {},
): Promise<FaultDisk> {
  const dataMiB = options.dataMiB ?? 24;
  const size = dataMiB * MiB + 48 * MiB;
  const file = path.join(directory, `${name}.img`);
  await makeImageFile(file, size);
  await sfdisk(
    file,
    `label: gpt\nsize=${FAT_SIZE / 512}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n`,
  );
  const extSize = size - EXT_START - MiB;
  const tree = await tempDir(t, 'b365-fault-tree-');
  await fs.mkdir(path.join(tree, 'etc'));
  await fs.writeFile(path.join(tree, 'etc', 'hostname'), `${name}\n`);
  for (let part = 0; part < Math.ceil(dataMiB / 8); part++) {
    await fs.writeFile(path.join(tree, `data-${part}.bin`), randomBytes(Math.min(8, dataMiB - part * 8) * MiB));
  }
  await fs.writeFile(path.join(tree, 'notes.txt'), 'lines of text\n'.repeat(20_000));
  await execa('mkfs.ext4', [
    '-q',
    '-F',
    '-b',
    String(EXT_BLOCK),
    '-L',
    'root',
    '-d',
    tree,
    '-E',
    `offset=${EXT_START}`,
    file,
    `${extSize / 1024}k`,
  ]);
  await execa('mkfs.vfat', [
    '-F',
    '16',
    '-n',
    'ESP',
    '--offset',
    String(FAT_START / 512),
    file,
    String(FAT_SIZE / 1024),
  ]);
  await execa('mcopy', ['-s', '-i', `${file}@@${FAT_START}`, path.join(tree, 'etc'), '::/'], {
    env: { MTOOLS_SKIP_CHECK: '1', TZ: 'UTC' },
  });
  await fs.rm(tree, { recursive: true, force: true });
  return { file, ext: { offset: EXT_START, size: extSize } };
}

/**
 * Overwrite the start of one data file with new bytes, in place: the blocks are found
 * with debugfs and written directly, so nothing else on the disk changes (a kernel mount
 * would also rewrite the journal, whose idle log a capture rightly leaves out).
 */
export async function changeDisk(t: Teardown, disk: FaultDisk, mebibytes = 2): Promise<void> {
  const loop = await attachLoop(t, disk.file, { readOnly: true, offset: disk.ext.offset, size: disk.ext.size });
  const blockOf = async (logical: number) => {
    const { stdout } = await execa('debugfs', ['-R', `bmap /data-0.bin ${logical}`, loop.device]);
    return Number(stdout.trim());
  };
  const blocks = (mebibytes * MiB) / EXT_BLOCK;
  const first = await blockOf(0);
  const last = await blockOf(blocks - 1);
  await loop.detach();
  if (!(first > 0) || last !== first + blocks - 1)
    throw new Error(`data-0.bin is not contiguous over its first ${mebibytes} MiB (${first}..${last})`);
  const handle = await fs.open(disk.file, 'r+');
  await handle.write(randomBytes(mebibytes * MiB), 0, mebibytes * MiB, disk.ext.offset + first * EXT_BLOCK);
  await handle.close();
}

export interface RunningClient {
  child: ResultPromise;
  /** Waits for the exit, records a committed image, and returns what `b365 image` said. */
  done(): Promise<CliResult>;
}

/**
 * A server and the disks imaged into it. Every source digest a machine's image may hold
 * is noted before the upload starts, so an image committed by a client that was killed
 * before it could say so is still checked against what it must contain.
 */
export class FaultRig {
  /** b3sum of each source state a machine was imaged from. */
  readonly candidates = new Map<string, Set<string>>();
  /** Images whose client reported success, with the digest they must restore to. */
  readonly committed = new Map<string, string>();

  private constructor(
    readonly t: Test,
    readonly server: TestServer,
    readonly directory: string,
  ) {}

  static async start(t: Test, options: { env?: Record<string, string>; repo?: string } = {}): Promise<FaultRig> {
    const server = await startServer(t, options);
    return new FaultRig(t, server, await tempDir(t, 'b365-fault-'));
  }

  get env(): Record<string, string> {
    return this.server.env;
  }

  async disk(name: string, options: { dataMiB?: number } = {}): Promise<FaultDisk> {
    return buildFaultDisk(this.t, this.directory, name, options);
  }

  private async expect(machine: string, source: string): Promise<string> {
    const digest = await b3sum(source);
    if (!this.candidates.has(machine)) this.candidates.set(machine, new Set());
    this.candidates.get(machine)!.add(digest);
    return digest;
  }

  private note(result: CliResult, digest: string): void {
    if (result.exitCode === 0 && result.json?.image) this.committed.set(result.json.image as string, digest);
  }

  async image(
    disk: FaultDisk,
    machine: string,
    options: { args?: string[]; env?: Record<string, string> } = {},
  ): Promise<CliResult> {
    const digest = await this.expect(machine, disk.file);
    const result = await b365(['image', disk.file, '--machine', machine, '--json', ...(options.args ?? [])], {
      env: { ...this.env, ...options.env },
    });
    this.note(result, digest);
    return result;
  }

  /** `b365 image` in the background, for a test that acts while it runs. */
  async startImage(
    disk: FaultDisk,
    machine: string,
    options: { args?: string[]; env?: Record<string, string> } = {},
  ): Promise<RunningClient> {
    const digest = await this.expect(machine, disk.file);
    const child = execa(
      process.execPath,
      [CLI_MAIN, 'image', disk.file, '--machine', machine, '--json', ...(options.args ?? [])],
      { env: { B365_LOG_LEVEL: 'warn', ...this.env, ...options.env }, reject: false },
    );
    return {
      child,
      done: async () => {
        const outcome = await child;
        const stdout = String(outcome.stdout ?? '');
        let json: unknown = null;
        try {
          json = stdout.trim() ? JSON.parse(stdout) : null;
        } catch {
          json = null;
        }
        const result: CliResult = {
          exitCode: outcome.exitCode ?? -1,
          stdout,
          stderr: String(outcome.stderr ?? ''),
          json,
        };
        this.note(result, digest);
        return result;
      },
    };
  }

  async storedChunkCount(): Promise<number> {
    return (await storedChunks(this.server.repo)).length;
  }

  /** Wait until at least `count` objects are stored (an upload is under way). */
  async waitForChunks(count: number, timeoutMs = 60_000): Promise<number> {
    return waitFor(
      `${count} stored objects`,
      async () => {
        const stored = await this.storedChunkCount();
        return stored >= count ? stored : undefined;
      },
      timeoutMs,
    );
  }

  async images(): Promise<{ id: string; machine: string; state: string }[]> {
    const listed = await b365(['images', '--json'], { env: this.env });
    if (listed.exitCode !== 0) throw new Error(`b365 images failed: ${listed.stderr}`);
    return listed.json.images;
  }
}

/** Assert a `b365` run exited 0; its stderr is shown only when it did not. */
export function succeeded(t: Test, result: CliResult, what: string): void {
  t.equal(result.exitCode, 0, what, { stderr: result.stderr.slice(-3000) });
}

/** Every *.tmp file under the repository. */
export async function tmpFiles(repo: string): Promise<string[]> {
  return (await listFiles(repo)).filter((file) => file.endsWith('.tmp'));
}

/**
 * Nothing committed is lost or silently wrong: content verification passes (apart from
 * images a scenario damaged on purpose), every image a client reported stays listed,
 * every listed image restores to a fresh file that hashes like a source state of its
 * machine, the store holds only objects that decode to their names, and once the server
 * stopped cleanly no temporary file remains.
 */
export async function assertNothingLost(t: Test, rig: FaultRig, options: { damaged?: string[] } = {}): Promise<void> {
  const damaged = new Set(options.damaged ?? []);
  const verify = await b365(['verify', '--all', '--level', 'content', '--json'], { env: rig.env });
  const report = verify.json?.report as { images: { image: string; result: string }[] } | undefined;
  t.ok(report, 'content verification produced a report', { stderr: verify.stderr.slice(-3000) });
  const failed = (report?.images ?? []).filter((image) => image.result !== 'ok').map((image) => image.image);
  t.same(
    failed.filter((image) => !damaged.has(image)),
    [],
    'content verification finds every undamaged image whole',
  );
  if (damaged.size === 0) t.equal(verify.exitCode, 0, 'verification exits 0');

  const listed = await rig.images();
  const ids = new Set(listed.map((image) => image.id));
  for (const image of rig.committed.keys()) t.ok(ids.has(image), `${image}, reported committed, is still listed`);
  for (const image of listed) {
    if (damaged.has(image.id)) continue;
    const target = path.join(rig.directory, `restored-${image.id.replace(/[^a-zA-Z0-9]/g, '_')}.img`);
    const restore = await b365(['restore', image.id, '--to', target, '--yes', '--json'], { env: rig.env });
    succeeded(t, restore, `${image.id} restores`);
    t.equal(restore.json?.verified, true, `${image.id}: the restore verified what it wrote`);
    const digest = restore.exitCode === 0 ? await b3sum(target) : 'no restore';
    const expected = rig.committed.get(image.id);
    if (expected) t.equal(digest, expected, `${image.id} restores byte for byte to the disk it was taken from`);
    else
      t.ok(
        rig.candidates.get(image.machine)?.has(digest),
        `${image.id} (committed by a client that did not report it) restores to a state its disk was in`,
      );
    await fs.rm(target, { force: true });
  }
  const intact = await assertStoreIntact(rig.server.repo);
  t.same(intact.bad, [], `each of the ${intact.objects} stored objects decodes to its own name`);
  await rig.server.stop();
  t.same(await tmpFiles(rig.server.repo), [], 'no temporary file is left once the server stopped cleanly');
}

export interface RelayedRequest {
  method: string;
  path: string;
}

export function isCommitRequest(request: RelayedRequest): boolean {
  return request.method === 'POST' && /\/sessions\/[^/]+\/commit$/.test(request.path);
}

export interface RelayHooks {
  /** Before the request goes on to the server; may kill it, stall, … */
  beforeForward?(request: RelayedRequest): Promise<void> | void;
  /** With the server's answer in hand: 'drop' cuts the client's connection instead. */
  afterAnswer?(request: RelayedRequest, status: number): Promise<'deliver' | 'drop'> | 'deliver' | 'drop';
  /** Once the answer was relayed in full: its status and milliseconds from request to last byte. */
  answered?(request: RelayedRequest, status: number, milliseconds: number): void;
}

/**
 * An HTTP relay in front of the server, so a test acts at an exact point of the
 * protocol (a commit arriving, its answer leaving) instead of guessing with timers.
 */
export interface RelayOptions {
  /** An https:// upstream must present a certificate with this fingerprint (asked for each request). */
  upstreamFingerprint?: () => string | null;
}

export async function startRelay(
  t: Teardown,
  upstream: () => string,
  hooks: RelayHooks,
  options: RelayOptions = {},
): Promise<{ url: string }> {
  const pinnedAgents = new Map<string | null, PinnedAgent>();
  const agentFor = (target: URL): https.Agent | undefined => {
    if (target.protocol !== 'https:') return undefined;
    const pin = options.upstreamFingerprint?.() ?? null;
    if (!pinnedAgents.has(pin)) pinnedAgents.set(pin, new PinnedAgent(pin, { keepAlive: true }));
    return pinnedAgents.get(pin);
  };
  t.teardown(() => {
    for (const agent of pinnedAgents.values()) agent.destroy();
  });
  const relay = http.createServer((request, response) => {
    void (async () => {
      const described = { method: request.method ?? 'GET', path: request.url ?? '/' };
      const arrived = performance.now();
      try {
        await hooks.beforeForward?.(described);
      } catch {
        request.destroy();
        return;
      }
      const target = new URL(upstream());
      const agent = agentFor(target);
      const outgoing = (agent ? https : http).request({
        host: target.hostname,
        port: target.port,
        method: described.method,
        path: described.path,
        headers: request.headers,
        agent,
      });
      outgoing.on('error', () => response.destroy());
      outgoing.on('response', (answer) => {
        void (async () => {
          const verdict = (await hooks.afterAnswer?.(described, answer.statusCode ?? 0)) ?? 'deliver';
          if (verdict === 'drop') {
            answer.resume();
            response.destroy();
            request.socket.destroy();
            return;
          }
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          response.on('finish', () => hooks.answered?.(described, answer.statusCode ?? 0, performance.now() - arrived));
          answer.pipe(response);
        })();
      });
      request.pipe(outgoing);
    })();
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        relay.closeAllConnections();
        relay.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}` };
}
