// Tokens and restore codes are kept only as hashes; refused authentications are
// logged at warn with the client's address and counted in the metrics.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

/** Every file the catalog writes: the database, its write-ahead log and shared memory. */
async function catalogBytes(repo: string): Promise<Buffer> {
  const names = (await fs.readdir(repo)).filter((name) => name.startsWith('catalog.sqlite'));
  return Buffer.concat(await Promise.all(names.map((name) => fs.readFile(path.join(repo, name)))));
}

t.test('the catalog and the log hold no token or restore code', async (t) => {
  const directory = await tempDir(t);
  const server = await startServer(t);
  const disk = path.join(directory, 'disk.img');
  await writeMixedFile(disk, 4 << 20, 2);
  t.equal((await b365(['image', disk, '--machine', 'pc-07'], { env: server.env })).exitCode, 0);
  const token = (
    await b365(['token', 'create', '--role', 'machine', '--machine', 'pc-07'], { env: server.env })
  ).stdout.trim();
  const code = (await b365(['restore-code', 'create', '--machine', 'pc-07'], { env: server.env })).stdout.trim();
  t.match(token, /^\S{20,}$/);
  t.match(code, /^\w{4}-\w{4}-\w{4}$/);
  const exchanged = await fetch(`${server.url}/api/v1/restore-codes/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code }),
  });
  const technicianToken = ((await exchanged.json()) as { token: string }).token;
  t.equal((await b365(['images'], { env: { ...server.env, B365_TOKEN: token } })).exitCode, 0, 'the token works');

  const catalog = await catalogBytes(server.repo);
  for (const [what, secret] of [
    ['machine token', token],
    ['admin token', server.adminToken],
    ['restore code', code],
    ['restore code without dashes', code.replace(/-/g, '')],
    ['token from the code', technicianToken],
  ] as const) {
    t.notOk(catalog.includes(Buffer.from(secret)), `no ${what} in the catalog`);
  }
  t.ok(
    catalog.includes(createHash('sha256').update(token).digest()),
    'the token is there as its SHA-256 (the right files were read)',
  );
  const log = await fs.readFile(path.join(server.repo, '..', 'server.log'), 'utf8');
  for (const secret of [token, server.adminToken, code, technicianToken])
    t.notOk(log.includes(secret), 'no secret in the server log');
});

t.test('failed authentications are warnings with the address, and counted', async (t) => {
  const server = await startServer(t);
  const admin = { authorization: `Bearer ${server.adminToken}` };
  t.equal(
    (await fetch(`${server.url}/api/v1/images`, { headers: { authorization: 'Bearer b365_guessed' } })).status,
    401,
  );
  t.equal((await fetch(`${server.url}/api/v1/images`)).status, 401);
  const wrongCode = await fetch(`${server.url}/api/v1/restore-codes/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: '0000-0000-0000' }),
  });
  t.equal(wrongCode.status, 401);

  const metrics = await (await fetch(`${server.url}/metrics`, { headers: admin })).text();
  t.match(metrics, /^b365_auth_failures_total\{kind="token"\} 2$/m, 'two refused tokens');
  t.match(metrics, /^b365_auth_failures_total\{kind="restore_code"\} 1$/m, 'one refused restore code');

  await sleep(200);
  const lines = (await fs.readFile(path.join(server.repo, '..', 'server.log'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const failures = lines.filter((line) => line.msg === 'authentication failed');
  t.equal(failures.length, 3);
  for (const failure of failures) t.match(failure, { level: 40, remote: '127.0.0.1', requestId: String });
  t.same(failures.map((failure) => failure.kind).sort(), ['restore_code', 'token', 'token']);
  t.ok(failures.some((failure) => failure.code === 'invalid_code'));
  t.notOk(
    lines.some((line) => JSON.stringify(line).includes('b365_guessed')),
    'the guessed token is not logged',
  );
});
