// The server's log: a request id on every line of a request (echoed to the caller),
// one access line per request at debug, a single `level` key per line.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

type LogLine = Record<string, unknown> & { level: number; msg: string };

async function logLines(server: TestServer): Promise<{ raw: string[]; parsed: LogLine[] }> {
  // pino writes synchronously, but the request's `finish` may trail the response a little.
  await sleep(200);
  const raw = (await fs.readFile(path.join(server.repo, '..', 'server.log'), 'utf8')).split('\n').filter(Boolean);
  return { raw, parsed: raw.map((line) => JSON.parse(line) as LogLine) };
}

function call(
  server: TestServer,
  method: string,
  route: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<Response> {
  return fetch(`${server.url}/api/v1${route}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

t.test('request ids and access lines', async (t) => {
  const server = await startServer(t, { env: { B365_LOG_LEVEL: 'debug' } });
  const admin = { authorization: `Bearer ${server.adminToken}` };

  const listed = await call(server, 'GET', '/images?machine=nobody', { ...admin, 'x-request-id': 'ticket-4711' });
  t.equal(listed.status, 200);
  t.equal(listed.headers.get('x-request-id'), 'ticket-4711', 'a sane incoming id is kept and echoed');

  const refused = await call(server, 'GET', '/images', {
    authorization: 'Bearer b365_wrong',
    'x-request-id': 'has spaces and "quotes"',
  });
  t.equal(refused.status, 401);
  const generated = refused.headers.get('x-request-id');
  t.match(generated, /^[0-9a-f-]{36}$/, 'an unusable incoming id is replaced by a new one');

  const created = await call(
    server,
    'POST',
    '/restore-codes',
    { ...admin, 'x-request-id': 'code-req' },
    { machine: 'pc-07', capture: true },
  );
  t.equal(created.status, 201);

  const { parsed } = await logLines(server);
  const access = parsed.find((line) => line.msg === 'request' && line.requestId === 'ticket-4711');
  t.match(
    access,
    {
      level: 20,
      method: 'GET',
      path: '/api/v1/images',
      status: 200,
      remote: '127.0.0.1',
      principal: 'admin token 1',
      bytes: Number,
      durationMs: Number,
    },
    'one access line at debug',
  );
  t.notMatch(JSON.stringify(access), /nobody/, 'the query string is not logged');
  t.equal(
    parsed.filter((line) => line.requestId === 'ticket-4711' && line.msg === 'request').length,
    1,
    'exactly one access line for the request',
  );

  const refusal = parsed.filter((line) => line.requestId === generated);
  t.ok(
    refusal.some((line) => line.msg === 'request refused' && line.status === 401),
    'the refusal carries the request id',
  );
  t.ok(
    refusal.some((line) => line.msg === 'authentication failed' && line.level === 40),
    'so does the warning',
  );
  t.ok(
    refusal.some((line) => line.msg === 'request' && line.status === 401 && line.principal === null),
    'and its access line, without a principal',
  );

  t.ok(
    parsed.some((line) => line.msg === 'restore code created' && line.requestId === 'code-req'),
    'lines logged after the body is read carry the id too',
  );
});

t.test('a verification logs its level as verifyLevel, beside the one log level', async (t) => {
  const directory = await tempDir(t);
  const server = await startServer(t);
  const disk = path.join(directory, 'disk.img');
  await writeMixedFile(disk, 4 << 20, 2);
  t.equal((await b365(['image', disk, '--machine', 'pc-07'], { env: server.env })).exitCode, 0);
  t.equal((await b365(['verify', '--all', '--level', 'structural'], { env: server.env })).exitCode, 0);

  const { raw, parsed } = await logLines(server);
  const finished = parsed.find((line) => line.msg === 'verification finished');
  t.match(finished, { level: 30, verifyLevel: 'structural' });
  const doubled = raw.filter((line) => (line.match(/"level":/g) ?? []).length !== 1);
  t.same(doubled, [], 'every line has exactly one level key');
});
