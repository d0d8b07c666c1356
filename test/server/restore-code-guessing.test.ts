// Guessing restore codes: wrong guesses are limited per client address, so nobody's
// guesses lock out a technician who has the right code; X-Forwarded-For counts only
// when it comes from a configured trusted proxy.
import t from 'tap';
import { api } from '../helpers/api.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { serverConfigEnv } from '../helpers/server-config.js';

async function exchange(
  server: TestServer,
  code: string,
  forwardedFor?: string,
): Promise<{ status: number; body: { code?: string; token?: string } }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (forwardedFor) headers['x-forwarded-for'] = forwardedFor;
  const response = await fetch(`${server.url}/api/v1/restore-codes/exchange`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ code }),
  });
  return { status: response.status, body: (await response.json()) as { code?: string; token?: string } };
}

async function codeFor(server: TestServer, machine: string): Promise<string> {
  const token = await api(server.url, 'POST', '/tokens', {
    token: server.adminToken,
    json: { role: 'machine', machine },
  });
  if (token.status !== 201) throw new Error(`token: ${token.status}`);
  const created = await api(server.url, 'POST', '/restore-codes', { token: server.adminToken, json: { machine } });
  if (created.status !== 201) throw new Error(`restore code: ${created.status} ${JSON.stringify(created.body)}`);
  return created.body.code as string;
}

const junk = (attempt: number) =>
  `ZZZZ-ZZZZ-${String(attempt)
    .padStart(4, '0')
    .replace(/[ILOU]/g, 'Z')}`;

t.test('behind a trusted proxy, many addresses guessing do not lock out a valid code', async (t) => {
  const server = await startServer(t, { env: await serverConfigEnv(t, { http: { trustProxy: ['127.0.0.1'] } }) });
  const code = await codeFor(server, 'pc-01');

  let refused = 0;
  for (let address = 1; address <= 12; address++) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const answer = await exchange(server, junk(address * 10 + attempt), `10.0.0.${address}`);
      if (answer.status === 401) refused++;
    }
  }
  t.equal(refused, 60, 'each of 12 addresses may try 5 wrong codes');
  const limited = await exchange(server, code, '10.0.0.1');
  t.equal(limited.status, 429, 'an address that used up its budget waits, even with a right code');

  const technician = await exchange(server, code, '192.0.2.7');
  t.equal(technician.status, 200, 'a technician at another address gets in with the valid code');
  t.ok(technician.body.token, 'and is given a token');
  const direct = await exchange(server, code);
  t.equal(direct.status, 200, 'so does one connecting directly');

  // The proxy appends the address it saw; what the client wrote before it is not believed.
  for (let attempt = 0; attempt < 5; attempt++)
    await exchange(server, junk(900 + attempt), `198.51.100.${attempt}, 10.0.9.9`);
  const forged = await exchange(server, code, '198.51.100.99, 10.0.9.9');
  t.equal(forged.status, 429, 'a client behind the proxy cannot pick its address by writing X-Forwarded-For itself');
});

t.test('without a trusted proxy, X-Forwarded-For is ignored', async (t) => {
  const server = await startServer(t);
  const code = await codeFor(server, 'pc-02');
  for (let attempt = 0; attempt < 5; attempt++) {
    const answer = await exchange(server, junk(attempt), `203.0.113.${attempt}`);
    t.equal(answer.status, 401, `wrong code ${attempt + 1} is refused`);
  }
  const forged = await exchange(server, code, '203.0.113.200');
  t.equal(forged.status, 429, 'a forged X-Forwarded-For does not give a new budget');
  t.equal(forged.body.code, 'rate_limited');
});
