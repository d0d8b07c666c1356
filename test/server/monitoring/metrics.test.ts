// /metrics as Prometheus reads it: a real server after real activity (images uploaded
// with the CLI, a run reported, verifications with one machine failing), scraped twice
// and read with a strict parser (and promtool when installed). Counters never go down,
// moments are timestamps, request durations are labelled by route pattern.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { chunkKey } from '../../../server/store/store.js';
import { FixedIndex } from '../../../src/format/fixed-index.js';
import { decodeFrame } from '../../../src/format/lz4-frame.js';
import { api } from '../../helpers/api.js';
import { b365 } from '../../helpers/cli.js';
import { writeMixedFile } from '../../helpers/content.js';
import { type Family, parseExposition, promtoolCheck, seriesKey } from '../../helpers/prometheus.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { tempDir } from '../../helpers/tmp.js';

async function scrape(server: TestServer): Promise<{ text: string; families: Map<string, Family> }> {
  const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.adminToken}` } });
  const text = await response.text();
  return { text, families: parseExposition(text) };
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    const sample = family.samples.find(
      (candidate) =>
        candidate.name === name && Object.entries(labels).every(([key, wanted]) => candidate.labels[key] === wanted),
    );
    if (sample) return sample.value;
  }
  return undefined;
}

function runReport(id: string, machine: string, state: 'running' | 'ok', startedAt: Date, finishedAt: Date | null) {
  return {
    id,
    machine,
    trigger: 'manual',
    scheduledFor: null,
    state,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt?.toISOString() ?? null,
    attempts: 1,
    disks: ['/dev/vda'],
    image: null,
    bytesRead: 1000,
    bytesUploaded: 500,
    chunksNew: 1,
    chunksReused: 0,
    warnings: [],
    error: null,
    progress: null,
    agentVersion: '0.1.0',
    sentAt: new Date().toISOString(),
  };
}

/** Every counter series and histogram bucket/sum/count of `before` is still there in `after`, not smaller. */
function assertMonotonic(t: Test, before: Map<string, Family>, after: Map<string, Family>): void {
  const grown = new Map<string, number>();
  for (const family of after.values()) for (const sample of family.samples) grown.set(seriesKey(sample), sample.value);
  let checked = 0;
  for (const family of before.values()) {
    if (family.type !== 'counter' && family.type !== 'histogram') continue;
    for (const sample of family.samples) {
      const later = grown.get(seriesKey(sample));
      if (later === undefined || later < sample.value)
        t.fail(`${seriesKey(sample)} went from ${sample.value} to ${later}`);
      checked++;
    }
  }
  t.ok(checked > 30, `${checked} counter and histogram series kept growing or stayed`);
}

async function corruptOneChunk(server: TestServer, image: string): Promise<void> {
  const manifest = (await api(server.url, 'GET', `/images/${image}/manifest`, { token: server.adminToken })).body;
  const index = FixedIndex.parse(
    decodeFrame(await fs.readFile(path.join(server.repo, chunkKey(manifest.disks[0].volumes[0].index))), 1 << 30),
  );
  const victim = path.join(server.repo, chunkKey(index.get(1)!));
  const bytes = await fs.readFile(victim);
  bytes[bytes.length - 20] ^= 0x55;
  await fs.writeFile(victim, bytes);
}

t.test('metrics after real activity', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const env = server.env;
  const first = await scrape(server);
  t.ok(value(first.families, 'process_cpu_user_seconds_total') !== undefined, 'standard process_* metrics');
  t.ok(value(first.families, 'nodejs_heap_size_total_bytes') !== undefined, 'standard nodejs_* metrics');
  t.notMatch(first.text, /^b365_server_/m, 'no prefix on the standard metrics');
  t.notMatch(first.text, /_age_seconds/, 'no ages: they fall and rise without anything happening');
  t.equal(first.families.get('b365_runs_running')?.type, 'gauge');
  t.equal(
    value(first.families, 'b365_runs_total', { result: 'running' }),
    undefined,
    'runs in progress are not a counter',
  );

  for (const [machine, seed] of [
    ['alpha', 1],
    ['beta', 2],
  ] as const) {
    const source = path.join(directory, `${machine}.img`);
    await writeMixedFile(source, 6 << 20, seed);
    const imaged = await b365(['image', source, '--machine', machine], { env });
    t.equal(imaged.exitCode, 0, imaged.stderr);
  }
  const machineToken = (await b365(['token', 'create', '--role', 'machine', '--machine', 'alpha', '--json'], { env }))
    .json.token as string;
  const runId = randomUUID();
  const started = new Date(Date.now() - 95_000);
  t.equal(
    (
      await api(server.url, 'PUT', `/runs/${runId}`, {
        token: machineToken,
        json: runReport(runId, 'alpha', 'running', started, null),
      })
    ).status,
    200,
  );
  const during = await scrape(server);
  t.equal(value(during.families, 'b365_runs_running'), 1, 'one run in progress');

  const images = (await b365(['images', '--json'], { env })).json.images as { id: string; machine: string }[];
  const beta = images.find((image) => image.machine === 'beta')!.id;
  t.equal(
    (await api(server.url, 'GET', `/images/${encodeURIComponent(beta)}`, { token: server.adminToken })).status,
    200,
  );
  t.equal((await api(server.url, 'GET', '/no/such/thing', { token: server.adminToken })).status, 404);
  t.equal(
    (await b365(['verify', '--all', '--level', 'structural'], { env })).exitCode,
    0,
    'everything verifies at first',
  );
  await corruptOneChunk(server, beta);
  t.equal(
    (await b365(['verify', '--all', '--level', 'content'], { env })).exitCode,
    9,
    'beta fails the content verification',
  );
  t.equal(
    (
      await api(server.url, 'PUT', `/runs/${runId}`, {
        token: machineToken,
        json: runReport(runId, 'alpha', 'ok', started, new Date()),
      })
    ).status,
    200,
  );
  const after = await scrape(server);
  const now = Date.now() / 1000;

  t.test('runs: a gauge in progress, counters by result, durations by kind', async (t) => {
    t.equal(value(after.families, 'b365_runs_running'), 0);
    t.equal(value(after.families, 'b365_runs_total', { result: 'ok' }), 1);
    t.equal(value(after.families, 'b365_runs_total', { result: 'failed' }), 0);
    t.equal(value(after.families, 'b365_run_uploaded_bytes_total'), 500);
    t.equal(after.families.get('b365_run_duration_seconds')?.type, 'histogram');
    t.equal(value(after.families, 'b365_run_duration_seconds_count', { kind: 'manual', result: 'ok' }), 1);
    t.equal(
      value(after.families, 'b365_run_duration_seconds_bucket', { kind: 'manual', result: 'ok', le: '60' }),
      0,
      'a 95 s run is not under 60 s',
    );
    t.equal(value(after.families, 'b365_run_duration_seconds_bucket', { kind: 'manual', result: 'ok', le: '120' }), 1);
  });

  t.test('moments are unix timestamps', async (t) => {
    for (const machine of ['alpha', 'beta']) {
      const committed = value(after.families, 'b365_last_successful_image_timestamp_seconds', { machine });
      if (machine === 'alpha')
        t.ok(committed !== undefined && Math.abs(now - committed) < 300, `alpha's last good image ${committed}`);
      else t.equal(committed, undefined, 'beta has no healthy image left');
    }
    const reported = value(after.families, 'b365_last_run_report_timestamp_seconds', { machine: 'alpha' });
    t.ok(reported !== undefined && Math.abs(now - reported) < 300, `alpha's last run report ${reported}`);
  });

  t.test('the last verification of each machine and level', async (t) => {
    t.equal(value(after.families, 'b365_verification_last_result', { machine: 'alpha', level: 'content' }), 1);
    t.equal(value(after.families, 'b365_verification_last_result', { machine: 'beta', level: 'content' }), 0);
    t.equal(
      value(after.families, 'b365_verification_last_result', { machine: 'beta', level: 'structural' }),
      1,
      'each level keeps its own result',
    );
    const when = value(after.families, 'b365_verification_last_timestamp_seconds', {
      machine: 'beta',
      level: 'content',
    });
    t.ok(when !== undefined && Math.abs(now - when) < 300, `finished at ${when}`);
  });

  t.test('request durations by route pattern, never by raw path', async (t) => {
    const requests = after.families.get('b365_http_request_duration_seconds')!;
    t.equal(requests.type, 'histogram');
    t.ok(
      value(after.families, 'b365_http_request_duration_seconds_count', {
        method: 'GET',
        route: '/api/v1/images/{id}',
        status: '200',
      })! >= 1,
    );
    t.ok(
      value(after.families, 'b365_http_request_duration_seconds_count', {
        method: 'PUT',
        route: '/api/v1/sessions/{id}/chunks/{digest}',
      })! >= 1,
      'chunk uploads',
    );
    t.ok(
      value(after.families, 'b365_http_request_duration_seconds_count', {
        method: 'GET',
        route: 'unmatched',
        status: '404',
      })! >= 1,
    );
    const routes = new Set(requests.samples.map((sample) => sample.labels.route));
    t.notOk(
      [...routes].some((route) => /@|[0-9a-f]{64}|[0-9a-f]{8}-[0-9a-f]{4}/.test(route!)),
      `no ids in route labels: ${[...routes].join(' ')}`,
    );
  });

  t.test('a second scrape after more activity: no counter went down', async (t) => {
    const secondRun = randomUUID();
    t.equal(
      (
        await api(server.url, 'PUT', `/runs/${secondRun}`, {
          token: machineToken,
          json: runReport(secondRun, 'alpha', 'running', new Date(), null),
        })
      ).status,
      200,
    );
    t.equal((await b365(['images'], { env })).exitCode, 0);
    const later = await scrape(server);
    assertMonotonic(t, during.families, after.families);
    assertMonotonic(t, after.families, later.families);
    t.equal(value(later.families, 'b365_runs_running'), 1, 'the gauge rises and falls with runs in progress');
  });

  t.test('promtool parses the exposition and finds nothing to lint in ours', async (t) => {
    const result = await promtoolCheck(after.text);
    if (!result.ran) {
      t.skip('promtool is not installed (Debian package prometheus); the strict parser above stands in', () => {});
      return;
    }
    t.ok(result.parsed, result.output);
    // prom-client's standard nodejs_active_*_total gauges carry the names every Node exporter uses.
    t.same(
      result.problems.filter((line) => !/^nodejs_active_\w+_total /.test(line)),
      [],
      'no lint findings on b365_* or process_* metrics',
    );
  });
});
