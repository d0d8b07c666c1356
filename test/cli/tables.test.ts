// What an operator reads in the tables and summaries: times in the server's configured
// zone with their age, agents that went silent, `images show` as a summary (and the
// manifest with --json), counts in the right plural, and `policy set` on a machine the
// server has never heard of.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { attachLoop, makeImageFile, MiB, run, sfdisk, writeTree } from '../helpers/disk.js';
import { startServer } from '../helpers/server.js';
import { serverConfigEnv } from '../helpers/server-config.js';
import { tempDir } from '../helpers/tmp.js';

/** Kolkata: +05:30 all year, so the expected wall time is plain arithmetic. */
const ZONE = 'Asia/Kolkata';
const OFFSET_MS = 5.5 * 3600_000;
const HOUR = 3600_000;

/** "2026-12-08 00:30 \+05:30" (escaped for a RegExp), computed without the code under test. */
function kolkata(iso: string): string {
  return `${new Date(Date.parse(iso) + OFFSET_MS).toISOString().slice(0, 16).replace('T', ' ')} \\+05:30`;
}

/** A GPT disk: an ESP (FAT32, label ESP) and an ext4 root (label root) holding a few files. */
async function buildDisk(t: { teardown(fn: () => unknown): void }, directory: string): Promise<string> {
  const disk = await makeImageFile(path.join(directory, 'disk.img'), 96 * MiB);
  await sfdisk(disk, 'label: gpt\nsize=33MiB, type=uefi, name="EFI system"\nsize=60MiB, type=linux, name="rootpart"\n');
  const esp = await attachLoop(t, disk, { offset: 1 * MiB, size: 33 * MiB });
  await run('mkfs.vfat', ['-F', '32', '-n', 'ESP', esp.device]);
  await esp.detach();
  const tree = path.join(directory, 'tree');
  await writeTree(tree, { 'etc/hostname': 'web-01\n', 'home/notes.txt': 'notes\n'.repeat(1000) });
  const root = await attachLoop(t, disk, { offset: 34 * MiB, size: 60 * MiB });
  await run('mkfs.ext4', ['-q', '-L', 'root', '-d', tree, root.device]);
  await root.detach();
  return disk;
}

t.test('tables, summaries and warnings as an operator reads them', async (t) => {
  const directory = await tempDir(t);
  const clockFile = path.join(directory, 'clock-offset-ms');
  await fs.writeFile(clockFile, '0');
  const config = await serverConfigEnv(t, { timezone: ZONE, monitoring: { checkEvery: '1s' } });
  const server = await startServer(t, { env: { ...config, B365_CLOCK_OFFSET_FILE: clockFile } });
  // The client's own zone is UTC: what the tables show must come from the server.
  const env = { ...server.env, TZ: 'UTC' };
  const disk = await buildDisk(t, directory);
  const captured = await b365(['image', disk, '--machine', 'web-01', '--json'], { env });
  t.equal(captured.exitCode, 0, captured.stderr);
  const imageId = captured.json.image as string;
  const listed = (await b365(['images', '--json'], { env })).json.images as { id: string; createdAt: string }[];
  const createdAt = listed.find((image) => image.id === imageId)!.createdAt;

  t.test('images and machines: local time in the server zone and an age, not ISO UTC', async (t) => {
    const images = await b365(['images'], { env });
    t.equal(images.exitCode, 0, images.stderr);
    t.match(
      images.stdout,
      new RegExp(`^${imageId}\\s+${kolkata(createdAt)} \\((just now|\\d+ s ago|1 min ago)\\)\\s+96\\.0 MiB`, 'm'),
    );
    t.notMatch(images.stdout, /\d{4}-\d\d-\d\dT\d\d:\d\d/, 'no raw ISO time in the table');
    const machines = await b365(['machines'], { env });
    t.match(machines.stdout, /^NAME\s+IMAGES\s+LATEST\s+LAST SEEN$/m);
    t.match(
      machines.stdout,
      new RegExp(`^web-01\\s+1\\s+${imageId}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d \\+05:30 \\(`, 'm'),
    );
    const tokens = await b365(['token', 'list'], { env });
    t.match(tokens.stdout, /^1\s+admin\s+-\s+first start\s+\d{4}-\d\d-\d\d \d\d:\d\d \+05:30 \(/m);
  });

  t.test('images show: a summary; --json: the manifest as stored', async (t) => {
    const shown = await b365(['images', 'show', imageId], { env });
    t.equal(shown.exitCode, 0, shown.stderr);
    const out = shown.stdout;
    t.match(out, new RegExp(`^image\\s+${imageId}$`, 'm'));
    t.match(out, /^machine\s+web-01 \(host \S+, b365 \S+\)$/m);
    t.match(out, new RegExp(`^taken\\s+${kolkata(createdAt)} \\(`, 'm'));
    t.match(out, /^parent\s+none/m);
    t.match(out, /^verified\s+not verified yet$/m);
    t.match(out, /^disk disk0: .*96\.0 MiB \(100663296 bytes, 512-byte sectors\), GPT partition table [0-9a-f-]{36}$/m);
    t.match(out, /^\s+#\s+NAME\s+FILESYSTEM\s+USED \/ SIZE\s+METHOD\s+CHUNKS$/m);
    t.match(
      out,
      /^\s+1\s+EFI system \/ ESP\s+vfat\s+[\d.]+ KiB \/ 33\.0 MiB\s+used-blocks\s+\d+ chunks: \d+ holes, [1-9]\d* new, 0 reused$/m,
    );
    t.match(
      out,
      /^\s+2\s+rootpart \/ root\s+ext4\s+[\d.]+ MiB \/ 60\.0 MiB\s+used-blocks\s+\d+ chunks: \d+ holes, [1-9]\d* new, 0 reused$/m,
    );
    t.notMatch(out, /"format"|"disks"/, 'no JSON');

    const manifest = await api(server.url, 'GET', `/images/${encodeURIComponent(imageId)}/manifest`, {
      token: server.adminToken,
    });
    const json = await b365(['images', 'show', imageId, '--json'], { env });
    t.same(json.json, manifest.body, '--json prints the manifest');
    t.equal(json.stdout, `${JSON.stringify(manifest.body, null, 2)}\n`, 'byte for byte as before');

    const verified = await b365(['verify', imageId], { env });
    t.equal(verified.exitCode, 0, verified.stderr);
    const after = await b365(['images', 'show', imageId], { env });
    t.match(
      after.stdout,
      /^verified\s+ok, content verification \S+ finished \d{4}-\d\d-\d\d \d\d:\d\d \+05:30 \((just now|\d+ s ago)\)$/m,
    );
    const machineToken = (
      await b365(['token', 'create', '--role', 'machine', '--machine', 'web-01', '--json'], { env })
    ).json.token as string;
    const asMachine = await b365(['images', 'show', imageId], { env: { ...env, B365_TOKEN: machineToken } });
    t.equal(asMachine.exitCode, 0, asMachine.stderr);
    t.match(
      asMachine.stdout,
      /^verified\s+no failure known \(this token cannot read verification history\)$/m,
      'a machine token sees the summary without the history',
    );
    const jobs = await b365(['verify', 'list'], { env });
    t.equal(jobs.exitCode, 0, jobs.stderr);
    t.match(jobs.stdout, /^ID\s+LEVEL\s+SCOPE\s+RESULT\s+STARTED\s+FINISHED$/m);
    t.match(
      jobs.stdout,
      new RegExp(`^\\S+\\s+content\\s+${imageId}\\s+ok\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d \\+05:30 \\(`, 'm'),
    );
  });

  t.test('agents: readable headers, a silent state, relative ages; runs and incidents in local time', async (t) => {
    const tokenFor = async (machine: string) =>
      (await b365(['token', 'create', '--role', 'machine', '--machine', machine, '--json'], { env })).json
        .token as string;
    const quiet = await tokenFor('quiet-pc');
    const busy = await tokenFor('busy-pc');
    t.equal(
      (
        await api(server.url, 'POST', '/agent/heartbeat', {
          token: quiet,
          json: { hostname: 'quiet-host', state: 'idle', version: '9.9.9' },
        })
      ).status,
      200,
    );
    // An hour passes on the server's clock: quiet-pc says nothing more, busy-pc does.
    await fs.writeFile(clockFile, String(HOUR));
    await sleep(200);
    const serverNow = Date.parse((await api(server.url, 'GET', '/health')).body.time);
    const nextRunAt = new Date(serverNow + 3.5 * HOUR).toISOString();
    t.equal(
      (
        await api(server.url, 'POST', '/agent/heartbeat', {
          token: busy,
          json: { hostname: 'busy-host', state: 'running', version: '9.9.9', nextRunAt },
        })
      ).status,
      200,
    );

    const agents = await b365(['agents'], { env });
    t.equal(agents.exitCode, 0, agents.stderr);
    t.match(
      agents.stdout,
      /^MACHINE\s+HOST\s+STATE\s+LAST HEARD\s+NEXT RUN\s+VERSION$/m,
      'headers are words, not JSON keys',
    );
    t.notMatch(agents.stdout, /lastHeartbeatAt|nextRunAt/);
    t.match(
      agents.stdout,
      /^quiet-pc\s+quiet-host\s+silent \(was idle\)\s+\d{4}-\d\d-\d\d \d\d:\d\d \+05:30 \(1 h ago\)\s+-\s+9\.9\.9$/m,
    );
    t.match(
      agents.stdout,
      new RegExp(
        `^busy-pc\\s+busy-host\\s+running\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d \\+05:30 \\(just now\\)\\s+${kolkata(nextRunAt)} \\(in 3 h\\)\\s+9\\.9\\.9$`,
        'm',
      ),
    );
    const json = await b365(['agents', '--json'], { env });
    t.same(
      (json.json as { machine: string; silent: boolean }[]).map((agent) => [agent.machine, agent.silent]),
      [
        ['busy-pc', false],
        ['quiet-pc', true],
      ],
    );
    t.match(
      (json.json as { lastHeartbeatAt: string }[])[0]!.lastHeartbeatAt,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
      '--json keeps ISO UTC',
    );

    // A run report from busy-pc, sent with the agent's (real) clock: one warning.
    const sentAt = Date.now();
    const report = {
      id: randomUUID(),
      machine: 'busy-pc',
      trigger: 'manual',
      scheduledFor: null,
      state: 'ok',
      startedAt: new Date(sentAt - 5 * 60_000).toISOString(),
      finishedAt: new Date(sentAt - 60_000).toISOString(),
      attempts: 1,
      disks: ['/dev/vda'],
      image: null,
      bytesRead: 1024,
      bytesUploaded: 512,
      chunksNew: 1,
      chunksReused: 0,
      warnings: ['a file changed while it was read'],
      error: null,
      progress: null,
      agentVersion: '9.9.9',
      sentAt: new Date(sentAt).toISOString(),
    };
    const put = await api(server.url, 'PUT', `/runs/${report.id}`, { token: busy, json: report });
    t.equal(put.status, 200, JSON.stringify(put.body));
    const reports = await b365(['reports'], { env });
    t.match(reports.stdout, /^STARTED\s+MACHINE\s+RESULT/m);
    t.match(
      reports.stdout,
      /^\d{4}-\d\d-\d\d \d\d:\d\d \+05:30 \(5 min ago\)\s+busy-pc\s+ok\s+-\s+4 min\b.*\s1 warning$/m,
      'local start time, and "1 warning", not "1 warnings"',
    );

    let incidents = '';
    for (let attempt = 0; attempt < 50 && !/agent-silent\s+quiet-pc/.test(incidents); attempt++) {
      await sleep(200);
      incidents = (await b365(['incidents'], { env })).stdout;
    }
    t.match(incidents, /^ID\s+KIND\s+SUBJECT\s+STATE\s+OPENED\s+RESOLVED\s+SUMMARY$/m);
    t.match(
      incidents,
      /^\d+\s+agent-silent\s+quiet-pc\s+open\s+\d{4}-\d\d-\d\d \d\d:\d\d \+05:30 \((just now|\d+ s ago)\)\s+-\s+The backup agent/m,
    );
  });

  t.test('policy set on a machine the server has never heard of warns and still sets it', async (t) => {
    const typo = await b365(['policy', 'set', 'quiet-pcx', '--keep-daily', '3'], { env });
    t.equal(typo.exitCode, 0, typo.stderr);
    t.match(typo.stderr, /warning: no machine named quiet-pcx has reported yet; the policy applies when it does/);
    t.match(typo.stderr, /similar name: quiet-pc\b/);
    t.match(typo.stdout, /^policy quiet-pcx, changed \d{4}-\d\d-\d\d \d\d:\d\d \+05:30 \(just now\)$/m);
    t.equal(
      (await b365(['policy', 'show', 'quiet-pcx', '--json'], { env })).json.effective.retention.keepDaily,
      3,
      'the policy was set',
    );
    const known = await b365(['policy', 'set', 'web-01', '--keep-daily', '4'], { env });
    t.equal(known.exitCode, 0, known.stderr);
    t.equal(known.stderr, '', 'no warning for a machine the server knows');
    const json = await b365(['policy', 'set', 'nobody-yet', '--keep-daily', '2', '--json'], { env });
    t.equal(json.json.name, 'nobody-yet', 'stdout stays the JSON result');
    t.match(json.stderr, /no machine named nobody-yet/);
  });
});
