// `b365 agent install` against an HTTPS server with a self-signed certificate: the pin is
// checked before anything is written, kept in the agent's configuration in its canonical
// form, and the agent's command line is printed; the token can come from stdin.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('agent install pins the fingerprint it is given and says how to reach the server', async (t) => {
  const server = await startServer(t, { tls: true });
  const fingerprint = server.fingerprint!;
  const token = await b365(['token', 'create', '--role', 'machine', '--machine', 'pinned-pc'], { env: server.env });
  t.equal(token.exitCode, 0, token.stderr);
  const directory = await tempDir(t);
  const install = (pin: string, into: string) =>
    b365(
      [
        'agent',
        'install',
        '--server',
        server.url,
        '--fingerprint',
        pin,
        '--token-file',
        '-',
        '--config-dir',
        path.join(directory, into),
        '--unit-dir',
        path.join(directory, into, 'units'),
        '--state-dir',
        path.join(directory, into, 'state'),
        '--no-start',
        '--allow-build-tree',
      ],
      { input: token.stdout },
    );

  const wrong = `${fingerprint.slice(0, -2)}${fingerprint.endsWith('00') ? '01' : '00'}`;
  const refused = await install(wrong, 'refused');
  t.equal(refused.exitCode, 11, refused.stderr);
  t.match(refused.stderr, `expected ${wrong}, presented ${fingerprint}`);
  await t.rejects(
    fs.access(path.join(directory, 'refused', 'agent.json')),
    'nothing is written for an untrusted server',
  );

  const installed = await install(fingerprint.replace(/:/g, '').toLowerCase(), 'etc');
  t.equal(installed.exitCode, 0, installed.stderr);
  const config = JSON.parse(await fs.readFile(path.join(directory, 'etc', 'agent.json'), 'utf8'));
  t.equal(config.fingerprint, fingerprint, 'kept in the canonical form');
  t.equal(
    (await fs.readFile(path.join(directory, 'etc', 'agent.token'), 'utf8')).trim(),
    token.stdout.trim(),
    'the token read from stdin',
  );
  t.match(installed.stderr, `b365 agent install --server https://`);
  t.match(installed.stderr, `--fingerprint ${fingerprint} --token-file ${path.join(directory, 'etc', 'agent.token')}`);
});
