// The run executor with a real server on 127.0.0.1 and a small disk file imaged raw: a run
// succeeds and is reported; a run that cannot reach the server waits and retries inside its
// window; a stop leaves it open in the outbox and the next start resumes it; a run whose
// window closed meanwhile is reported failed; a held lock skips the trigger.
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { AgentApi, type PolicyAnswer } from '../../src/agent/api.js';
import { tryLock } from '../../src/agent/lock.js';
import { ReportOutbox } from '../../src/agent/outbox.js';
import { ReportDelivery } from '../../src/agent/report-delivery.js';
import { RunExecutor } from '../../src/agent/run-executor.js';
import type { RunReport } from '../../src/format/run-report.js';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { eventually } from '../helpers/notify-receivers.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;
const RETRY_MS = 60_000;

t.test('runs: success, retry, stop and resume, closed window, lock', async (t) => {
  // The capture's own HTTP retries give up quickly, so the executor's retry is what is tested.
  process.env.B365_RETRY_FOR_MS = '300';
  const base = await tempDir(t, 'b365-runs-');
  const server = await startServer(t);
  const created = await api(server.url, 'POST', '/tokens', {
    token: server.adminToken,
    json: { role: 'machine', machine: 'alpha' },
  });
  const token = created.body.token as string;
  const disk = path.join(base, 'disk.img');
  const data = Buffer.alloc(8 * MiB);
  randomFillSync(data, 0, 4 * MiB);
  await fs.writeFile(disk, data);
  const policyArgs = ['policy', 'set', 'alpha', '--schedule', '0 */2 * * *', '--timezone', 'UTC', '--disks', disk];
  const set = await b365([...policyArgs, '--raw', '--chunk-size', '1M', '--window', '30m', '--json'], {
    env: server.env,
  });
  t.equal(set.exitCode, 0, set.stderr);
  const agentApi = new AgentApi(server.url, token, pino({ level: 'silent' }));
  t.teardown(() => agentApi.close());
  const answer: PolicyAnswer = await agentApi.policy();

  const stateDirectory = path.join(base, 'state');
  const logged: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line).msg) });
  const clock = { offset: 0, now: () => Date.now() + clock.offset };
  const outbox = new ReportOutbox(stateDirectory);
  const executor = (signal = new AbortController().signal) =>
    new RunExecutor({
      server: server.url,
      token,
      stateDirectory,
      clock,
      log,
      signal,
      tickMs: 50,
      delivery: new ReportDelivery({
        outbox,
        send: (report) => agentApi.putReport(report),
        clock,
        log,
        backoff: () => ({ initialMs: 100, maxMs: 100 }),
      }),
      retry: () => ({ initialMs: RETRY_MS, maxMs: RETRY_MS }),
    });
  const serverRun = async (id: string) =>
    (await api(server.url, 'GET', `/runs/${id}`, { token: server.adminToken })).body as RunReport;
  const waitingToRetry = (runs: RunExecutor) =>
    eventually('the run to wait for a retry', () => runs.current?.progress?.stage === 'waiting to retry', 60_000);

  await t.test('a run images the disk and its final report reaches the server', async (t) => {
    const report = await executor().start(answer, 'manual', null);
    t.equal(report?.state, 'ok', report?.error ?? '');
    t.match(report?.image, /^alpha@/);
    t.equal(report?.attempts, 1);
    t.equal(report?.chunksNew, 4, 'four chunks of random data, the rest are holes');
    t.same(report?.disks, [disk]);
    const recorded = await eventually('the report on the server', async () => {
      const run = await serverRun(report!.id);
      return run.state === 'ok' ? run : null;
    });
    t.equal(recorded.image, report?.image);
  });

  await t.test('a run that cannot reach the server retries after the backoff, as one report', async (t) => {
    await server.stop();
    const runs = executor();
    const done = runs.start(answer, 'schedule', clock.now());
    await waitingToRetry(runs);
    t.match(runs.current?.error, /^attempt 1 failed: cannot reach the server/);
    await server.restart();
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.equal(runs.current?.attempts, 1, 'no second attempt before the backoff has passed on the clock');
    clock.offset += RETRY_MS;
    const report = await done;
    t.equal(report?.state, 'ok', report?.error ?? '');
    t.equal(report?.attempts, 2);
    t.equal(report?.chunksNew, 0, 'the unchanged disk reuses every chunk');
    t.ok(logged.includes('run could not reach the server; it will be retried'));
  });

  await t.test('a stop leaves the run open; the next start resumes it inside its window', async (t) => {
    await server.stop();
    const controller = new AbortController();
    const stopped = executor(controller.signal);
    const done = stopped.start(answer, 'schedule', clock.now());
    await waitingToRetry(stopped);
    const id = stopped.current!.id;
    const started = Date.now();
    controller.abort(new Error('agent stopping'));
    t.equal(await done, null, 'a stopped run has no final report');
    t.ok(Date.now() - started < 2000, 'the stop ends the wait promptly');
    const open = (await outbox.pending()).find((waiting) => waiting.id === id);
    t.equal(open?.state, 'running', 'it waits in the outbox, still running');

    await server.restart();
    const resumed = executor();
    await resumed.resumeInterrupted(answer);
    t.equal(resumed.current?.id, id, 'the same run is resumed');
    await resumed.settled();
    const recorded = await eventually('the resumed run on the server', async () => {
      const run = await serverRun(id);
      return run.state === 'ok' ? run : null;
    });
    t.equal(recorded.attempts, 2, 'one run, two attempts');
    t.ok(logged.includes('resuming a run interrupted by a stop of the agent'));
  });

  await t.test('an interrupted run whose window has closed is reported failed', async (t) => {
    const runs = executor();
    const old = runs.newReport(answer, 'schedule', clock.now() - 3600_000);
    await outbox.save(old);
    await runs.resumeInterrupted(answer);
    t.equal(runs.current, null, 'nothing is resumed');
    const failed = (await outbox.pending()).find((waiting) => waiting.id === old.id);
    t.equal(failed?.state, 'failed');
    t.match(failed?.error, /could not resume it within its window/);
  });

  await t.test('a trigger while the lock is held is skipped', async (t) => {
    const held = tryLock(path.join(stateDirectory, 'agent.lock'));
    t.ok(held);
    t.equal(await executor().start(answer, 'manual', null), null);
    held!.release();
    t.ok(logged.includes('another run is in progress; this trigger is skipped'));
  });
});
