// Interactive commands give up on an unreachable server within 10 s, with one line and
// exit 7: a refused connection, a listener that never answers, a name that does not resolve.
import net from 'node:net';
import t, { type Test } from 'tap';
import { b365, type CliResult } from '../helpers/cli.js';

const INTERACTIVE = [
  ['images'],
  ['machines'],
  ['reports'],
  ['incidents'],
  ['token', 'list'],
  ['restore-code', 'list'],
  ['policy', 'list'],
  ['agents'],
  ['keys'],
  ['files', 'ls', 'pc@latest'],
];
/** The slower failures are tried with fewer commands: a listing, the anonymous `keys`, and `files ls`. */
const SAMPLE = [['images'], ['keys'], ['files', 'ls', 'pc@latest']];

/** A port that was free a moment ago: nothing listens there, so connections are refused. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Accepts connections and never says a word, like a stuck server or a wrong service. */
async function blackHole(t: Test): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

interface Timed {
  args: string[];
  result: CliResult;
  seconds: number;
}

async function runAll(commands: string[][], env: Record<string, string | undefined>): Promise<Timed[]> {
  return Promise.all(
    commands.map(async (args) => {
      const started = Date.now();
      const result = await b365(args, { env, timeout: 30_000 });
      return { args, result, seconds: (Date.now() - started) / 1000 };
    }),
  );
}

/**
 * Each command's wait for the server, in seconds: its run time less that of the same
 * command stopped by a usage error before any request, run alongside as many others, so a
 * loaded test machine's slow start of Node does not count as waiting.
 */
async function waitingTimes(commands: string[][], server: string): Promise<Timed[]> {
  const baseline = await runAll(
    commands.map((args) => [...args, '--no-such-option']),
    { B365_SERVER: server },
  );
  const timed = await runAll(commands, {
    B365_SERVER: server,
    B365_TOKEN: 'b365_not-a-real-token',
    B365_RETRY_FOR_MS: undefined,
  });
  return timed.map((run, index) => ({
    ...run,
    seconds: run.seconds - Math.min(run.seconds, baseline[index]!.seconds),
  }));
}

async function expectQuickFailure(t: Test, commands: string[][], server: string, reason: RegExp): Promise<void> {
  for (const { args, result, seconds } of await waitingTimes(commands, server)) {
    const name = `b365 ${args.join(' ')}`;
    t.equal(result.exitCode, 7, `${name} exits 7`);
    t.ok(seconds < 10, `${name} waited ${seconds.toFixed(1)} s for the server`);
    const lines = result.stderr.trimEnd().split('\n');
    t.equal(lines.length, 1, `${name} says one line: ${result.stderr}`);
    t.match(lines[0], /^b365: cannot reach the server at /, name);
    t.match(lines[0], reason, name);
    t.equal(result.stdout, '', `${name} prints no result`);
  }
}

t.test('a refused connection', async (t) => {
  await expectQuickFailure(t, INTERACTIVE, `http://127.0.0.1:${await closedPort()}`, /connection refused/);
});

t.test('a listener that accepts and never answers', async (t) => {
  await expectQuickFailure(t, SAMPLE, `http://127.0.0.1:${await blackHole(t)}`, /no answer within \d+ s/);
});

t.test('a host name that does not resolve', async (t) => {
  await expectQuickFailure(t, SAMPLE, 'https://nonexistent.invalid:8365', /nonexistent\.invalid/);
});
