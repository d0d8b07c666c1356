// stdout holds only a command's result, so `X=$(b365 …)` and `b365 … > FILE` work;
// and a value the server refuses exits 2, like one refused before sending.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('create commands print only the secret on stdout', async (t) => {
  const directory = await tempDir(t);
  const server = await startServer(t);
  const source = path.join(directory, 'disk.img');
  await writeMixedFile(source, 4 << 20, 3);
  t.equal((await b365(['image', source, '--machine', 'pc-07'], { env: server.env })).exitCode, 0);

  const code = await b365(['restore-code', 'create', '--machine', 'pc-07', '--ttl', '2h'], { env: server.env });
  t.equal(code.exitCode, 0);
  t.match(code.stdout, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\n$/, 'the code and nothing else on stdout');
  t.match(code.stderr, /restore code for pc-07, valid until/, 'the explanation on stderr');
  const exchanged = await b365(['images', '--json'], {
    env: { B365_SERVER: server.url, B365_RESTORE_CODE: code.stdout.trim(), B365_TOKEN: undefined },
  });
  t.equal(exchanged.exitCode, 0, 'the captured code works as it is');

  const token = await b365(['token', 'create', '--role', 'auditor', '--label', 'audit'], { env: server.env });
  t.equal(token.exitCode, 0);
  t.match(token.stdout, /^\S+\n$/, 'the token and nothing else on stdout');
  t.match(token.stderr, /auditor token \d+, valid until revoked/);
  t.notMatch(token.stderr, token.stdout.trim(), 'the secret is not repeated on stderr');
  t.equal(
    (await b365(['images'], { env: { ...server.env, B365_TOKEN: token.stdout.trim() } })).exitCode,
    0,
    'the captured token works as it is',
  );
});

t.test('keys writes bare PEM to stdout and to --out', async (t) => {
  const directory = await tempDir(t);
  const server = await startServer(t);
  const shown = await b365(['keys'], { env: server.env });
  t.equal(shown.exitCode, 0);
  t.match(shown.stdout, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/, 'stdout is one PEM block');
  const file = path.join(directory, 'signing.pem');
  const written = await b365(['keys', '--out', file], { env: server.env });
  t.equal(written.exitCode, 0);
  t.equal(written.stdout, '', 'nothing else on stdout');
  t.equal(await fs.readFile(file, 'utf8'), shown.stdout, 'the file holds the same PEM');
  const openssl = await execa('openssl', ['pkey', '-pubin', '-in', file, '-noout'], { reject: false });
  t.equal(openssl.exitCode, 0, `openssl reads the file: ${openssl.stderr}`);
  const piped = path.join(directory, 'piped.pem');
  await fs.writeFile(piped, shown.stdout);
  t.equal(
    (await execa('openssl', ['pkey', '-pubin', '-in', piped, '-noout'], { reject: false })).exitCode,
    0,
    'so does b365 keys > FILE',
  );
});

t.test('values only the server checks exit 2 with its message', async (t) => {
  const server = await startServer(t);
  const ttl = await b365(['token', 'create', '--role', 'auditor', '--ttl', '40000d'], { env: server.env });
  t.equal(ttl.exitCode, 2, 'an absurd token lifetime');
  t.match(
    ttl.stderr,
    /^b365: server refused POST \/tokens: body.ttlSeconds must be a whole number of seconds from 1 to \d+/,
  );
  const schedule = await b365(['policy', 'set', 'default', '--schedule', '99 99 * * *'], { env: server.env });
  t.equal(schedule.exitCode, 2, 'a schedule that cannot be read');
  t.match(schedule.stderr, /schedule/);
  const json = await b365(['policy', 'set', 'default', '--timezone', 'Mars/Olympus_Mons', '--json'], {
    env: server.env,
  });
  t.equal(json.exitCode, 2, 'an unknown time zone');
  t.match(json.json?.error?.message, /unknown time zone/);
});
