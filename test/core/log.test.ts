// Logs are human lines on a terminal and JSON lines elsewhere, or as --log-format says.
// The warnings come from a real one: the CLI retrying while its server restarts.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t from 'tap';
import { humanLine, syslogPriority } from '../../src/core/log.js';
import { CLI_MAIN } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { SERVER_NODE_OPTIONS } from '../../server/main.js';

const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/** `b365 images` while the server is down for a moment; on a pseudo-terminal when `terminal`. */
async function imagesDuringRestart(
  server: TestServer,
  extra: string[],
  options: { terminal: boolean; env?: Record<string, string> },
): Promise<string> {
  await server.stop();
  const command = [process.execPath, CLI_MAIN, 'images', ...extra];
  const env = {
    ...server.env,
    B365_RETRY_FOR_MS: '30000',
    B365_LOG_LEVEL: 'warn',
    JOURNAL_STREAM: '',
    INVOCATION_ID: '',
    ...options.env,
  };
  // script(1) from util-linux runs the command on a new pseudo-terminal.
  const child = options.terminal
    ? execa('script', ['-qec', command.map(quote).join(' '), '/dev/null'], { env, reject: false })
    : execa(command[0]!, command.slice(1), { env, reject: false });
  await sleep(1500);
  await server.restart();
  const result = await child;
  t.equal(result.exitCode, 0, `b365 images ${extra.join(' ')} succeeds once the server is back: ${result.stderr}`);
  return `${result.stdout}\n${result.stderr}`.replace(/\r/g, '');
}

t.test('a warning on a terminal is a human line; JSON when asked, piped or under systemd', async (t) => {
  const server = await startServer(t);

  const human = await imagesDuringRestart(server, [], { terminal: true });
  t.match(
    human,
    /^warning: retrying \(attempt: 1, delayMs: \d+, error: cannot reach the server at http:\/\/127\.0\.0\.1:\d+ \(GET \/images\): connection refused/m,
    'a human warning',
  );
  t.notMatch(human, /"level"/, 'no JSON on the terminal');

  const json = await imagesDuringRestart(server, ['--log-format', 'json'], { terminal: true });
  const line = json.split('\n').find((text) => text.startsWith('{'));
  t.ok(line, 'a JSON line with --log-format json');
  t.match(JSON.parse(line!), { level: 40, msg: 'retrying', attempt: 1 });

  const piped = await imagesDuringRestart(server, [], { terminal: false });
  t.match(piped, /^\{"level":40,.*"msg":"retrying"/m, 'JSON when stderr is not a terminal');

  const systemd = await imagesDuringRestart(server, [], {
    terminal: true,
    env: { INVOCATION_ID: '0123456789abcdef0123456789abcdef' },
  });
  t.match(systemd, /^\{"level":40,.*"msg":"retrying"/m, 'JSON under systemd, even on a terminal');

  const forced = await imagesDuringRestart(server, ['--log-format', 'text'], { terminal: false });
  t.match(forced, /^warning: retrying \(attempt: 1/m, '--log-format text on a pipe');
});

t.test('a bad --log-format is a usage error', async (t) => {
  const result = await execa(process.execPath, [CLI_MAIN, '--log-format', 'xml', 'images'], {
    reject: false,
    env: { B365_TOKEN: 'x' },
  });
  t.equal(result.exitCode, 2);
  t.match(result.stderr, /^b365: --log-format must be text, json or auto, got "xml"/);
});

t.test('a server whose stderr is the journal prefixes each line with its priority', async (t) => {
  const directory = await tempDir(t);
  // JOURNAL_STREAM names the journal's stream by device and inode; a file stands in for it.
  const journal = path.join(directory, 'journal');
  await fs.writeFile(journal, '');
  const { dev, ino } = await fs.stat(journal);
  const handle = await fs.open(journal, 'a');
  t.teardown(() => handle.close());
  // Node's own spawn hands the file's descriptor to the server as its stderr, as systemd does.
  const server = spawn(
    process.execPath,
    [...SERVER_NODE_OPTIONS, CLI_MAIN, 'server', '--repo', path.join(directory, 'repo'), '--listen', '127.0.0.1:0'],
    {
      env: { ...process.env, JOURNAL_STREAM: `${dev}:${ino}`, B365_LOG_LEVEL: 'info', INVOCATION_ID: '' },
      stdio: ['ignore', 'pipe', handle.fd],
    },
  );
  const exited = once(server, 'exit');
  let output = '';
  for await (const data of server.stdout!) {
    output += String(data);
    if (output.includes('listening on')) break;
  }
  server.kill('SIGTERM');
  await exited;
  const lines = (await fs.readFile(journal, 'utf8')).split('\n').filter(Boolean);
  t.ok(lines.length > 0, 'the server logged');
  for (const line of lines) t.match(line, /^<[2-7]>\{"level":\d+/, line.slice(0, 60));
  t.ok(
    lines.some((line) => line.startsWith('<6>') && line.includes('"msg":"server listening"')),
    'info is priority 6',
  );
});

t.test('journald priorities and human lines from records', async (t) => {
  t.same([60, 50, 40, 30, 20, 10].map(syslogPriority), [2, 3, 4, 6, 7, 7]);
  t.equal(
    humanLine({ level: 30, time: 'x', pid: 1, name: 'b365-agent', msg: 'run finished', run: 'r1' }),
    'b365-agent: run finished (run: r1)\n',
  );
  t.equal(
    humanLine({ level: 50, msg: 'failed', err: { message: 'disk gone', stack: '…' } }),
    'error: failed (err: disk gone)\n',
  );
});
