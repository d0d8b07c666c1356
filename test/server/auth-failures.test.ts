// Refused credentials leave a trace: a warn line with the client's address in the server's
// log and a count on /metrics, for tokens and restore codes alike; a wrong role does not.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { api } from '../helpers/api.js';
import { startServer } from '../helpers/server.js';

t.test('failed authentications are logged at warn with the client address and counted', async (t) => {
  const server = await startServer(t);
  t.equal((await api(server.url, 'GET', '/images', { token: 'b365_not-a-real-token' })).status, 401);
  t.equal((await api(server.url, 'GET', '/images', { token: null })).status, 401);
  t.equal((await api(server.url, 'POST', '/restore-codes/exchange', { json: { code: 'zzzz-zzzz-zzzz' } })).status, 401);
  const auditor = await api(server.url, 'POST', '/tokens', { token: server.adminToken, json: { role: 'auditor' } });
  t.equal(
    (await api(server.url, 'POST', '/tokens', { token: auditor.body.token, json: { role: 'auditor' } })).status,
    403,
    'a wrong role is refused, not counted',
  );

  const lines = (await fs.readFile(path.join(server.repo, '..', 'server.log'), 'utf8'))
    .split('\n')
    .filter((line) => line.includes('authentication failed'))
    .map((line) => JSON.parse(line));
  t.equal(lines.length, 3, 'one line per refused credential');
  for (const line of lines) {
    t.equal(line.level, 40, 'at warn');
    t.equal(line.remote, '127.0.0.1');
  }
  t.match(lines[0], { kind: 'token', path: '/images', reason: 'unknown token' });
  t.notMatch(JSON.stringify(lines), /not-a-real-token|zzzz-zzzz-zzzz/, 'the secrets tried are not logged');

  const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.adminToken}` } });
  const metrics = await response.text();
  t.match(metrics, /^b365_auth_failures_total\{kind="token"\} 2$/m);
  t.match(metrics, /^b365_auth_failures_total\{kind="restore_code"\} 1$/m);
});
