// The agent and the server as real processes on 127.0.0.1, a real SMTP server and a
// real webhook receiver, and one clock file both processes read, so that hours pass in
// seconds. The agent is started exactly as its installed systemd unit would start it.
import { createHmac, randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import t from 'tap';
import type { incidentView } from '../../server/monitoring/incidents.js';
import type { agentView, RunView } from '../../server/runs.js';
import { tryLock } from '../../src/agent/lock.js';
import { agentInstallArgs } from '../helpers/agent-install.js';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { eventually, startSmtpReceiver, startWebhookReceiver } from '../helpers/notify-receivers.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;
const WEBHOOK_SECRET = 'test-webhook-secret';

t.test('agent, schedules, reports, incidents and notifications', async (t) => {
  const base = await tempDir(t, 'b365-agent-');
  const clockFile = path.join(base, 'clock-offset');
  const setTime = async (iso: string) => {
    await fs.writeFile(clockFile, String(Date.parse(iso) - Date.now()));
    await sleep(150);
  };
  await setTime('2030-01-07T01:59:30Z');

  const smtp = await startSmtpReceiver(t);
  const webhook = await startWebhookReceiver(t);
  await fs.writeFile(path.join(base, 'webhook.secret'), `${WEBHOOK_SECRET}\n`);
  const serverConfig = path.join(base, 'server.json');
  await fs.writeFile(
    serverConfig,
    JSON.stringify({
      timezone: 'UTC',
      monitoring: { checkEvery: '1s', heartbeatTimeout: '3h', minFreeSpace: 0 },
      agents: { heartbeatEvery: '10m', retryInitial: '2s', retryMax: '4s' },
      retention: { pruneSchedule: null, gcSchedule: null },
      notifications: {
        repeatEvery: '1h',
        summarySchedule: '0 7 * * *',
        email: { host: '127.0.0.1', port: smtp.port, from: 'backup365@example.test', to: ['admin@example.test'] },
        webhooks: [{ url: webhook.url, secretFile: 'webhook.secret' }],
      },
    }),
  );
  const server = await startServer(t, { env: { B365_SERVER_CONFIG: serverConfig, B365_CLOCK_OFFSET_FILE: clockFile } });
  const adminEnv = { ...server.env, B365_CLOCK_OFFSET_FILE: clockFile };
  const admin = server.adminToken;

  const disk = path.join(base, 'disk.img');
  const fillDisk = async () => {
    const data = Buffer.alloc(64 * MiB);
    randomFillSync(data, 8 * MiB, 40 * MiB);
    await fs.writeFile(disk, data);
  };
  await fillDisk();

  const created = await api(server.url, 'POST', '/tokens', {
    token: admin,
    json: { role: 'machine', machine: 'alpha' },
  });
  t.equal(created.status, 201);
  const machineToken = created.body.token as string;
  const policy = await b365(
    [
      'policy',
      'set',
      'alpha',
      '--schedule',
      '0 */2 * * *',
      '--timezone',
      'UTC',
      '--disks',
      disk,
      '--raw',
      '--chunk-size',
      '1M',
      '--spread',
      '0s',
      '--window',
      '30m',
      '--json',
    ],
    { env: adminEnv },
  );
  t.equal(policy.exitCode, 0, policy.stderr);
  t.same(policy.json.effective.disks, [disk]);
  t.equal(policy.json.effective.retention.keepDaily, 14, 'retention not set here is inherited from the default');

  const runs = async (): Promise<RunView[]> =>
    (await api(server.url, 'GET', '/runs?machine=alpha', { token: admin })).body.runs;
  const runFor = async (scheduledFor: string, state?: string) =>
    (await runs()).find((run) => run.scheduledFor === scheduledFor && (!state || run.state === state));
  const mail = (pattern: RegExp) => smtp.mails.find((message) => pattern.test(message.subject));
  const hook = (event: string, kind: string) =>
    webhook.hooks.find((received) => received.json?.event === event && received.json?.incident?.kind === kind);

  // --- install, then start the agent the way its unit does ---------------------
  const configDir = path.join(base, 'etc');
  const unitDir = path.join(base, 'systemd');
  const install = await b365(
    agentInstallArgs(
      { configDir, unitDir, stateDir: path.join(base, 'agent-state'), server: server.url, token: machineToken },
      ['--no-start', '--allow-build-tree', '--json'],
    ),
    {},
  );
  t.equal(install.exitCode, 0, install.stderr);
  t.equal(install.json.machine, 'alpha', 'install asked the server who the token belongs to');
  t.equal((await fs.stat(install.json.tokenFile)).mode & 0o777, 0o600, 'the token file is 0600');
  t.equal((await fs.readFile(install.json.tokenFile, 'utf8')).trim(), machineToken);
  const unit = await fs.readFile(path.join(unitDir, 'backup365-agent.service'), 'utf8');
  t.match(unit, /^\[Service\][\s\S]*Restart=always/m);
  const execStart = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
  t.same(execStart.slice(-4), ['agent', 'run', '--config', path.join(configDir, 'agent.json')]);

  const agentEnv = { B365_CLOCK_OFFSET_FILE: clockFile, B365_RETRY_FOR_MS: '1000', B365_LOG_LEVEL: 'info' };
  const agents: ResultPromise[] = [];
  const startAgent = (name: string) => {
    const child = execa(execStart[0]!, [...execStart.slice(1), '--tick', '200'], {
      env: agentEnv,
      reject: false,
      stdout: 'ignore',
      stderr: { file: path.join(base, `${name}.log`) },
    });
    agents.push(child);
    return child;
  };
  const stopAgent = async (child: ResultPromise) => {
    child.kill('SIGTERM');
    await child;
  };
  t.teardown(async () => {
    for (const child of agents) if (child.exitCode === null) await stopAgent(child);
  });
  let agentA = startAgent('agent-a');
  await eventually('the first heartbeat', async () =>
    (await api(server.url, 'GET', '/agents', { token: admin })).body.agents.find(
      (agent: ReturnType<typeof agentView>) => agent.machine === 'alpha',
    ),
  );

  await t.test('a schedule fires on time; the agent images the disk file and reports', async (t) => {
    await setTime('2030-01-07T01:59:58Z');
    const run = await eventually('the 02:00 run', () => runFor('2030-01-07T02:00:00.000Z', 'ok'));
    const started = Date.parse(run.startedAt);
    t.ok(
      started >= Date.parse('2030-01-07T02:00:00Z') && started < Date.parse('2030-01-07T02:00:05Z'),
      `started on time (${run.startedAt})`,
    );
    t.match(run.image, /^alpha@20300107T0200\d\dZ$/);
    t.equal(run.trigger, 'schedule');
    t.equal(run.attempts, 1);
    t.ok(run.bytesRead >= 40 * MiB && run.bytesRead <= 64 * MiB, `read the disk (${run.bytesRead} bytes)`);
    t.equal(run.chunksNew, 40);
    t.equal(run.chunksReused, 0);
    t.ok(run.bytesUploaded >= 40 * MiB, 'random data does not compress');
    t.same(run.disks, [disk]);
    const image = await api(server.url, 'GET', `/images/${encodeURIComponent(String(run.image))}`, { token: admin });
    t.equal(image.status, 200, 'the image is in the repository');
    const reports = await b365(['reports', '--machine', 'alpha', '--json'], { env: adminEnv });
    t.equal(reports.exitCode, 0, reports.stderr);
    t.equal(reports.json.length, 1);
    t.equal(reports.json[0].id, run.id);
  });

  await t.test('two overlapping triggers produce one run', async (t) => {
    await fillDisk(); // new content: this run uploads again and takes a while
    const agentB = startAgent('agent-b'); // a second agent on the same machine and lock
    await eventually('the second agent to load its policy', async () =>
      /policy loaded/.test(await fs.readFile(path.join(base, 'agent-b.log'), 'utf8').catch(() => '')),
    );
    await setTime('2030-01-07T03:59:59Z');
    const run = await eventually('the 04:00 run', () => runFor('2030-01-07T04:00:00.000Z', 'ok'));
    t.equal(run.chunksNew, 40);
    await sleep(1500);
    t.equal(
      (await runs()).filter((candidate) => candidate.scheduledFor === '2030-01-07T04:00:00.000Z').length,
      1,
      'one report for the occurrence',
    );
    t.equal((await runs()).length, 2, 'and no report from the skipped trigger');
    const logs =
      (await fs.readFile(path.join(base, 'agent-a.log'), 'utf8')) +
      (await fs.readFile(path.join(base, 'agent-b.log'), 'utf8'));
    t.match(logs, /another run is in progress; this trigger is skipped/);

    // A run in progress holds the lock: a manual trigger meanwhile does nothing.
    const held = tryLock(path.join(base, 'agent-state', 'agent.lock'));
    t.ok(held, 'no run holds the lock now');
    const manual = await b365(['agent', 'run', '--once', '--config', path.join(configDir, 'agent.json')], {
      env: agentEnv,
    });
    held!.release();
    t.equal(manual.exitCode, 5, 'exit code 5: conflict');
    t.match(manual.stderr, /another run is in progress/);
    t.equal((await runs()).length, 2, 'the manual trigger left no report');
    await stopAgent(agentB);
  });

  await t.test('server down at the scheduled time: the agent retries, one report later', async (t) => {
    await server.stop();
    await setTime('2030-01-07T05:59:59Z');
    await sleep(7000);
    await server.restart();
    const run = await eventually('the 06:00 run', () => runFor('2030-01-07T06:00:00.000Z', 'ok'));
    t.ok(run.attempts >= 2, `tried ${run.attempts} times`);
    t.equal(run.chunksNew, 0, 'the disk did not change: every chunk was reused');
    t.equal(run.chunksReused, 40);
    t.equal((await runs()).filter((candidate) => candidate.scheduledFor === '2030-01-07T06:00:00.000Z').length, 1);
    const incidents = (await api(server.url, 'GET', '/incidents?state=all', { token: admin })).body.incidents;
    t.same(
      incidents.filter((incident: ReturnType<typeof incidentView>) => incident.kind === 'missed-run'),
      [],
      'a late run inside its window is not a missed run',
    );
  });

  await t.test('agent stopped: the missed run is mailed and posted, repeated, then cleared', async (t) => {
    await stopAgent(agentA);
    await setTime('2030-01-07T08:31:00Z');
    const opened = await eventually('the missed-run mail', () =>
      mail(/^\[Backup365\] PROBLEM: scheduled image run missed - alpha$/),
    );
    t.match(opened.text, /No image run of alpha started for its scheduled time 2030-01-07T08:00:00Z/);
    t.same(opened.to, ['admin@example.test']);
    const posted = await eventually('the missed-run webhook', () => hook('incident.opened', 'missed-run'));
    t.equal(posted.json.incident.subject, 'alpha');
    t.equal(posted.headers['x-b365-event'], 'incident.opened');
    const expected = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(`${posted.headers['x-b365-timestamp']}.${posted.body}`).digest('hex')}`;
    t.equal(posted.headers['x-b365-signature'], expected, 'the webhook is signed with the shared secret');
    const summary = await eventually('the daily summary', () => mail(/Daily summary/));
    t.match(summary.text, /alpha: 3 ok, 0 failed/, summary.text);

    await setTime('2030-01-07T09:32:00Z');
    await eventually('the reminder mail', () => mail(/^\[Backup365\] STILL OPEN: scheduled image run missed - alpha$/));
    await eventually('the reminder webhook', () => hook('incident.reminder', 'missed-run'));

    agentA = startAgent('agent-a2');
    await eventually('the agent back', async () =>
      (await api(server.url, 'GET', '/incidents?state=open', { token: admin })).body.incidents.every(
        (incident: ReturnType<typeof incidentView>) => incident.kind !== 'agent-silent',
      ),
    );
    await setTime('2030-01-07T09:59:59Z');
    await eventually('the 10:00 run', () => runFor('2030-01-07T10:00:00.000Z', 'ok'));
    const cleared = await eventually('the all-clear mail', () =>
      mail(/^\[Backup365\] RESOLVED: scheduled image run missed - alpha$/),
    );
    t.match(cleared.text, /Resolved: a run succeeded again/);
    await eventually('the all-clear webhook', () => hook('incident.resolved', 'missed-run'));
    const incidents = await b365(['incidents', '--all', '--json'], { env: adminEnv });
    const missed = incidents.json.filter((incident: ReturnType<typeof incidentView>) => incident.kind === 'missed-run');
    t.equal(missed.length, 1, 'one missed-run incident, not raised again after the all-clear');
    t.equal(missed[0].state, 'resolved');
    t.ok(missed[0].notifications >= 3, 'opened, reminded, resolved');
  });

  await t.test('a failing run (the disk disappeared) is reported with its error and notified', async (t) => {
    await fs.rename(disk, `${disk}.gone`);
    await setTime('2030-01-07T11:59:59Z');
    const run = await eventually('the failed 12:00 run', () => runFor('2030-01-07T12:00:00.000Z', 'failed'));
    t.match(run.error, /disk\.img does not exist/);
    t.equal(run.image, null);
    const message = await eventually('the failure mail', () =>
      mail(/^\[Backup365\] PROBLEM: image run failed - alpha$/),
    );
    t.match(message.text, /disk\.img does not exist/);
    const posted = await eventually('the failure webhook', () => hook('incident.opened', 'run-failed'));
    t.match(posted.json.incident.detail.error, /does not exist/);
    await fs.rename(`${disk}.gone`, disk);

    const metrics = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${admin}` } });
    const text = await metrics.text();
    t.match(text, /^b365_runs_total\{result="ok"\} 4$/m);
    t.match(text, /^b365_runs_total\{result="failed"\} 1$/m);
    t.match(text, /^b365_open_incidents\{kind="run-failed"\} 1$/m);
    t.match(text, /^b365_last_successful_image_timestamp_seconds\{machine="alpha"\} \d+/m);
    t.equal((await fetch(`${server.url}/metrics`)).status, 401, 'metrics need a token unless configured public');
  });
});
