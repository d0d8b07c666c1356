// The OpenAPI document is the route table: every route Express serves is an operation
// with an operationId and schemas for its parameters and bodies, the server refuses what
// those schemas refuse (400 naming the field), and Redocly's recommended rules pass.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import t from 'tap';
import { createApp } from '../../server/app.js';
import { openApiDocument, operations } from '../../server/openapi.js';
import { Repository } from '../../server/repository.js';
import { SigningKey } from '../../server/signing.js';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/log.js';
import { api } from '../helpers/api.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const PROJECT = fileURLToPath(new URL('../../../', import.meta.url));

interface ExpressLayer {
  rawPath?: unknown;
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: ExpressLayer[] };
}

/** Every route of the application as `METHOD /api/v1/template`, walking nested routers. */
function servedRoutes(stack: ExpressLayer[], prefix = ''): string[] {
  const routes: string[] = [];
  for (const layer of stack) {
    if (layer.route) {
      const template = `${prefix}${layer.route.path}`.replace(/\{\/\*(\w+)\}/g, '/{$1}').replace(/:(\w+)/g, '{$1}');
      for (const method of Object.keys(layer.route.methods))
        if (method !== '_all') routes.push(`${method.toUpperCase()} ${template}`);
    } else if (layer.handle?.stack) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      routes.push(...servedRoutes(layer.handle.stack, `${prefix}${mount}`));
    }
  }
  return routes;
}

t.test('every route the server serves is an operation of the document, and back', async (t) => {
  const directory = await tempDir(t);
  const { repository } = await Repository.open(path.join(directory, 'repo'), { clock: systemClock, log: silentLogger });
  t.teardown(() => repository.close());
  const { app } = createApp(repository, silentLogger, {
    signingKey: await SigningKey.load(path.join(directory, 'repo')),
  });
  const served = new Set(servedRoutes((app as unknown as { router: { stack: ExpressLayer[] } }).router.stack));
  const documented = new Set(
    operations.map((operation) => `${operation.method.toUpperCase()} /api/v1${operation.path}`),
  );
  for (const route of served) {
    if (route === 'GET /metrics') continue; // the same handler as GET /api/v1/metrics, where scrapers look first
    t.ok(documented.has(route), `${route} is an operation in server/api-schemas`);
  }
  for (const route of documented) t.ok(served.has(route), `${route} is served`);
});

t.test('every operation has an id, and schemas for its parameters and bodies', async (t) => {
  const ids = operations.map((operation) => operation.operationId);
  t.same(
    ids.filter((id, index) => ids.indexOf(id) !== index),
    [],
    'operationIds are unique',
  );
  for (const operation of operations) {
    const what = `${operation.method.toUpperCase()} ${operation.path}`;
    t.match(operation.operationId, /^[a-z][A-Za-z]+$/, `${what}: operationId`);
    const templated = [...operation.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]).sort();
    t.same(Object.keys(operation.pathParameters ?? {}).sort(), templated, `${what}: a schema for each path parameter`);
    if (operation.query) t.equal(operation.query.type, 'object', `${what}: query parameters are an object schema`);
    if (operation.body && 'json' in operation.body)
      t.ok(operation.body.json.type === 'object' || operation.body.json.$ref, `${what}: a JSON body schema`);
    for (const [status, response] of Object.entries(operation.responses)) {
      if (!status.startsWith('2')) continue;
      t.ok(response.json || response.media?.length, `${what} ${status}: a response body schema`);
    }
  }
  const document = openApiDocument() as {
    paths: Record<string, Record<string, { operationId?: string; responses: Record<string, unknown> }>>;
  };
  for (const [template, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item))
      t.ok(operation.operationId, `${method} ${template} has an operationId in the document`);
  }
});

t.test('the server refuses what the schemas refuse, naming the field', async (t) => {
  const server = await startServer(t);
  const admin = server.adminToken;
  const refusals: [string, string, { json?: unknown }, RegExp][] = [
    ['GET', '/runs?limit=many', {}, /^query\.limit must be integer, got "many"$/],
    ['GET', '/runs?colour=red', {}, /^query\.colour is not a known field \(known: machine, since, state, limit\)$/],
    ['GET', '/images?machine=..%2Fetc', {}, /^query\.machine: invalid machine name/],
    ['GET', '/incidents?state=closed', {}, /^query\.state must be one of open, resolved, all, got "closed"$/],
    ['POST', '/tokens', { json: { role: 'auditor', colour: 'red' } }, /^body\.colour is not a known field/],
    ['POST', '/tokens', { json: { role: 'auditor', label: 7 } }, /^body\.label must be string, got 7$/],
    ['POST', '/tokens', { json: {} }, /^body\.role is required$/],
    ['POST', '/verifications', { json: { all: 'yes' } }, /^body\.all must be boolean, got "yes"$/],
    [
      'POST',
      '/gc',
      { json: { graceSeconds: -1 } },
      /^body\.graceSeconds must be a number of seconds, 0 or more, got -1$/,
    ],
  ];
  for (const [method, where, options, message] of refusals) {
    const answer = await api(server.url, method, where, { token: admin, ...options });
    t.equal(answer.status, 400, `${method} ${where} ${JSON.stringify(options.json ?? '')}: 400`);
    t.equal(answer.body?.code, 'usage');
    t.match(answer.body?.message, message);
  }
  t.equal(
    (await api(server.url, 'GET', '/tokens', { token: admin })).body.tokens.length,
    1,
    'no refused request created a token',
  );
  t.equal(
    (await api(server.url, 'GET', '/runs?limit=5&state=ok', { token: admin })).status,
    200,
    'good query parameters pass',
  );
  const auditor = (await api(server.url, 'POST', '/tokens', { token: admin, json: { role: 'auditor' } })).body
    .token as string;
  const forbidden = await api(server.url, 'POST', '/tokens', { token: auditor, json: { colour: 'red' } });
  t.equal(forbidden.status, 403, 'a role that may not call an operation learns nothing about its schema');
});

t.test('Redocly lints the document without errors', async (t) => {
  const redocly = process.env.B365_REDOCLY ?? path.join(PROJECT, 'node_modules', '.bin', 'redocly');
  const present = await fs.access(redocly).then(
    () => true,
    () => false,
  );
  // A dev dependency: `make setup` (npm ci) always installs it, so its absence is a failure.
  if (!present) return void t.fail(`${redocly} is missing: npm ci installs @redocly/cli`);
  const directory = await tempDir(t);
  const file = path.join(directory, 'openapi.json');
  await fs.writeFile(file, JSON.stringify(openApiDocument(), null, 2));
  const result = await execa(redocly, ['lint', '--config', path.join(PROJECT, 'redocly.yaml'), file], {
    reject: false,
    cwd: directory,
    env: { REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  });
  t.equal(result.exitCode, 0, `${result.stdout}\n${result.stderr}`);
  t.match(`${result.stdout}${result.stderr}`, /Your API description is valid/);
});
