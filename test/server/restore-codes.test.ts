// Restore codes: what a technician gets for one, and every way a code is refused.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { api } from '../helpers/api.js';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('restore codes', async (t) => {
  const directory = await tempDir(t);
  const clockFile = path.join(directory, 'clock-offset');
  await fs.writeFile(clockFile, '0');
  const server = await startServer(t, { env: { B365_CLOCK_OFFSET_FILE: clockFile } });
  const source = path.join(directory, 'disk.img');
  await writeMixedFile(source, 16 << 20, 5);
  for (const machine of ['pc-07', 'other'])
    t.equal((await b365(['image', source, '--machine', machine], { env: server.env })).exitCode, 0);

  const created = await b365(['restore-code', 'create', '--machine', 'pc-07', '--ttl', '4h', '--json'], {
    env: server.env,
  });
  t.equal(created.exitCode, 0, created.stderr);
  const code = created.json.code as string;
  t.match(
    code,
    /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/,
    'three groups of four unambiguous characters',
  );

  t.test('a technician restores with the code alone', async (t) => {
    const env = {
      B365_SERVER: server.url,
      B365_RESTORE_CODE: code.toLowerCase().replace(/-/g, ' '),
      B365_STATE_DIR: path.join(directory, 'tech'),
    };
    const images = await b365(['images', '--json'], { env });
    t.equal(images.exitCode, 0, images.stderr);
    t.same(
      images.json.images.map((image: { machine: string }) => image.machine),
      ['pc-07'],
      'sees only its machine',
    );
    const target = path.join(directory, 'restored.img');
    const restore = await b365(['restore', 'pc-07@latest', '--to', target], { env });
    t.equal(restore.exitCode, 0, restore.stderr);
    t.equal(await b3sum(target), await b3sum(source));
    const other = await b365(['restore', 'other@latest', '--to', path.join(directory, 'x.img')], { env });
    t.equal(other.exitCode, 6, 'another machine is forbidden');
    const write = await b365(['image', source, '--machine', 'pc-07'], { env });
    t.equal(write.exitCode, 6, 'a restore code cannot write images');
  });

  t.test('a capture code also lets the technician image that machine (and no other)', async (t) => {
    const capture = await b365(['restore-code', 'create', '--machine', 'pc-07', '--capture', '--json'], {
      env: server.env,
    });
    t.equal(capture.json.capture, true);
    const env = {
      B365_SERVER: server.url,
      B365_RESTORE_CODE: capture.json.code,
      B365_STATE_DIR: path.join(directory, 'tech-capture'),
    };
    const imaged = await b365(['image', source, '--machine', 'pc-07', '--json'], { env });
    t.equal(imaged.exitCode, 0, imaged.stderr);
    t.match(imaged.json.image, /^pc-07@/);
    const elsewhere = await b365(['image', source, '--machine', 'other'], { env });
    t.equal(elsewhere.exitCode, 6, 'not another machine');
    const used = (await api(server.url, 'GET', '/audit?kind=restore-code-used', { token: server.adminToken })).body
      .events;
    t.match(JSON.stringify(used), /restore and capture/, 'the use is in the audit trail');
  });

  t.test('unknown, expired and revoked codes are refused clearly', async (t) => {
    const unknown = await api(server.url, 'POST', '/restore-codes/exchange', { json: { code: 'AAAA-BBBB-CCCC' } });
    t.equal(unknown.status, 401);
    t.equal(unknown.body.code, 'invalid_code');
    t.match(unknown.body.message, /unknown restore code/);

    const shortLived = (
      await b365(['restore-code', 'create', '--machine', 'pc-07', '--ttl', '1h', '--json'], { env: server.env })
    ).json;
    const exchanged = await api(server.url, 'POST', '/restore-codes/exchange', { json: { code: shortLived.code } });
    t.equal(exchanged.status, 200);
    await fs.writeFile(clockFile, String(2 * 3600 * 1000));
    await new Promise((resolve) => setTimeout(resolve, 120));
    const expired = await api(server.url, 'POST', '/restore-codes/exchange', { json: { code: shortLived.code } });
    t.equal(expired.status, 401);
    t.equal(expired.body.code, 'code_expired');
    t.equal(
      (await api(server.url, 'GET', '/images', { token: exchanged.body.token })).status,
      401,
      'its token expired with it',
    );
    await fs.writeFile(clockFile, '0');
    await new Promise((resolve) => setTimeout(resolve, 120));

    const revocable = (await b365(['restore-code', 'create', '--machine', 'pc-07', '--json'], { env: server.env }))
      .json;
    const token = (await api(server.url, 'POST', '/restore-codes/exchange', { json: { code: revocable.code } })).body
      .token;
    t.equal((await api(server.url, 'GET', '/images', { token })).status, 200);
    t.equal((await b365(['restore-code', 'revoke', String(revocable.id)], { env: server.env })).exitCode, 0);
    const revoked = await api(server.url, 'POST', '/restore-codes/exchange', { json: { code: revocable.code } });
    t.equal(revoked.status, 401);
    t.equal(revoked.body.code, 'code_revoked');
    t.equal((await api(server.url, 'GET', '/images', { token })).status, 401, 'tokens it gave are revoked too');
  });

  t.test('guessing is rate limited, and every use is in the audit trail', async (t) => {
    for (let attempt = 0; attempt < 5; attempt++)
      await api(server.url, 'POST', '/restore-codes/exchange', { json: { code: `ZZZZ-ZZZZ-ZZZ${attempt}` } });
    const limited = await api(server.url, 'POST', '/restore-codes/exchange', { json: { code } });
    t.equal(limited.status, 429, 'even a right code waits after too many wrong ones');
    t.equal(limited.body.code, 'rate_limited');
    const audit = await api(server.url, 'GET', '/audit', { token: server.adminToken });
    const kinds = audit.body.events.map((event: { kind: string }) => event.kind);
    for (const kind of [
      'restore-code-created',
      'restore-code-used',
      'restore-code-refused',
      'restore-code-revoked',
      'restore-code-rate-limited',
    ])
      t.ok(kinds.includes(kind), `${kind} is logged`);
  });
});
