// Report delivery against a real server on 127.0.0.1 that is down for a while: reports
// wait in the outbox on disk, survive a restart of the agent, and reach the server when
// it is back, oldest first and each final report once; one the server refuses for good
// (a 400) is dropped instead of blocking the rest.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { AgentApi } from '../../src/agent/api.js';
import { ReportOutbox } from '../../src/agent/outbox.js';
import { ReportDelivery } from '../../src/agent/report-delivery.js';
import { systemClock } from '../../src/core/clock.js';
import type { RunReport, RunState } from '../../src/format/run-report.js';
import { api } from '../helpers/api.js';
import { eventually } from '../helpers/notify-receivers.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

function report(machine: string, startedAt: string, state: RunState): RunReport {
  return {
    id: randomUUID(),
    machine,
    trigger: 'manual',
    scheduledFor: null,
    state,
    startedAt,
    finishedAt: state === 'running' ? null : startedAt,
    attempts: 1,
    disks: ['/dev/sda'],
    image: null,
    bytesRead: 0,
    bytesUploaded: 0,
    chunksNew: 0,
    chunksReused: 0,
    warnings: [],
    error: state === 'failed' ? 'the disk vanished' : null,
    progress: null,
    agentVersion: '0.0.0-test',
    sentAt: startedAt,
  };
}

t.test('reports wait for a server that is down, across a restart of the agent', async (t) => {
  const server = await startServer(t);
  const created = await api(server.url, 'POST', '/tokens', {
    token: server.adminToken,
    json: { role: 'machine', machine: 'alpha' },
  });
  t.equal(created.status, 201);
  const machineToken = created.body.token as string;
  const stateDirectory = path.join(await tempDir(t, 'b365-delivery-'), 'state');
  const warnings: string[] = [];
  const errors: string[] = [];
  const log = pino(
    { level: 'warn' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { level: number; msg: string };
        (entry.level >= 50 ? errors : warnings).push(entry.msg);
      },
    },
  );
  /** Every report the server took, as the agent sent it. */
  const accepted: RunReport[] = [];
  const startAgent = () => {
    const agentApi = new AgentApi(server.url, machineToken, log);
    t.teardown(() => agentApi.close());
    return new ReportDelivery({
      outbox: new ReportOutbox(stateDirectory),
      send: async (sent) => {
        const answer = await agentApi.putReport(sent);
        accepted.push(sent);
        return answer;
      },
      clock: systemClock,
      log,
      backoff: () => ({ initialMs: 100, maxMs: 300 }),
    });
  };

  await server.stop();
  const first = startAgent();
  // Recorded out of order: delivery goes by start time, and a refused report comes first.
  const second = report('alpha', '2030-01-07T02:00:00.000Z', 'failed');
  // More attempts than the server's schema allows: a 400 that no retry changes.
  const invalid = { ...report('alpha', '2030-01-07T00:00:00.000Z', 'ok'), attempts: 2_000_000 };
  const earliest = report('alpha', '2030-01-07T01:00:00.000Z', 'ok');
  const open = report('alpha', '2030-01-07T03:00:00.000Z', 'running');
  for (const each of [second, invalid, earliest, open]) await first.record(each);
  await first.deliver();
  t.equal(accepted.length, 0, 'nothing reached a server that is down');
  t.ok(warnings.includes('run report not delivered; it waits in the outbox'), 'the wait is logged');
  t.equal((await fs.readdir(path.join(stateDirectory, 'reports'))).length, 4, 'all four wait on disk');
  const mode = (await fs.stat(path.join(stateDirectory, 'reports', `${open.id}.json`))).mode & 0o777;
  t.equal(mode, 0o600, 'a waiting report is readable by the agent alone');

  // The agent restarts: a new delivery that knows only what the outbox on disk holds.
  await server.restart();
  const restarted = startAgent();
  const outbox = new ReportOutbox(stateDirectory);
  await eventually(
    'the outbox to keep only the open run',
    async () => {
      restarted.deliverIfDue(Date.now());
      return (await outbox.pending()).length === 1 && accepted.length >= 3;
    },
    30_000,
  );
  t.same(
    accepted.map((sent) => sent.id),
    [earliest.id, second.id, open.id],
    'delivered oldest first, the refused one not counted',
  );
  t.ok(errors.includes('the server refused a run report; it is dropped'), 'the refused report is logged and dropped');
  t.same(
    (await outbox.pending()).map((waiting) => waiting.id),
    [open.id],
    'a running report stays until its final state is sent',
  );

  // Ticks with nothing new send nothing again; the final state of the open run goes once.
  for (let tick = 0; tick < 5; tick++) {
    restarted.deliverIfDue(Date.now());
    await restarted.deliver();
  }
  t.equal(accepted.length, 3, 'an unchanged open report is not sent again');
  await restarted.record({ ...open, state: 'ok', finishedAt: '2030-01-07T03:10:00.000Z' });
  await eventually('the final report', async () => (await outbox.pending()).length === 0, 30_000);
  for (let tick = 0; tick < 5; tick++) await restarted.deliver();
  const counts = new Map<string, number>();
  for (const sent of accepted.filter((each) => each.state !== 'running'))
    counts.set(sent.id, (counts.get(sent.id) ?? 0) + 1);
  t.same([...counts.values()], [1, 1, 1], 'each final report was sent once');

  const runs = (await api(server.url, 'GET', '/runs?machine=alpha', { token: server.adminToken })).body.runs as {
    id: string;
    state: string;
  }[];
  t.same(
    Object.fromEntries(runs.map((run) => [run.id, run.state])),
    { [earliest.id]: 'ok', [second.id]: 'failed', [open.id]: 'ok' },
    'the server holds every report of alpha in its final state',
  );
});
