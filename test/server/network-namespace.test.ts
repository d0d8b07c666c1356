// A server on 0.0.0.0 that serves HTTPS only, reached from another network namespace (a
// second host joined by a veth pair): the CLI and an agent get through with the pinned
// fingerprint and are refused, with both fingerprints named, with a wrong one.
import { randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b365, CLI_MAIN, type CliResult } from '../helpers/cli.js';
import { attachLoop, MiB } from '../helpers/disk.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

interface Namespace {
  name: string;
  /** The server's address as the namespace reaches it. */
  serverAddress: string;
}

/** A namespace joined to this one by a veth pair on a /30 of its own; removed at teardown. */
async function otherHost(t: { teardown(fn: () => unknown): void }): Promise<Namespace> {
  const id = randomBytes(3).toString('hex');
  const name = `b365t-${id}`;
  const [hostEnd, nsEnd] = [`vh${id}`, `vn${id}`];
  const subnet = `10.${200 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}`;
  const base = (parseInt(id.slice(4, 6), 16) % 63) * 4;
  const [hostAddress, nsAddress] = [`${subnet}.${base + 1}`, `${subnet}.${base + 2}`];
  await execa('ip', ['netns', 'add', name]);
  t.teardown(async () => {
    await execa('ip', ['link', 'delete', hostEnd], { reject: false });
    await execa('ip', ['netns', 'delete', name], { reject: false });
  });
  await execa('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd]);
  await execa('ip', ['link', 'set', nsEnd, 'netns', name]);
  await execa('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostEnd]);
  await execa('ip', ['link', 'set', hostEnd, 'up']);
  await execa('ip', ['netns', 'exec', name, 'ip', 'addr', 'add', `${nsAddress}/30`, 'dev', nsEnd]);
  await execa('ip', ['netns', 'exec', name, 'ip', 'link', 'set', nsEnd, 'up']);
  await execa('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  return { name, serverAddress: hostAddress };
}

/** `b365 ARGS` run inside the namespace, with only the environment given. */
async function b365In(namespace: Namespace, args: string[], env: Record<string, string>): Promise<CliResult> {
  const result = await execa('ip', ['netns', 'exec', namespace.name, process.execPath, CLI_MAIN, ...args], {
    env: { B365_LOG_LEVEL: 'warn', B365_RETRY_FOR_MS: '2000', ...env },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
  const stdout = String(result.stdout);
  return {
    exitCode: result.exitCode ?? -1,
    stdout,
    stderr: String(result.stderr),
    json: args.includes('--json') && stdout.trim() ? JSON.parse(stdout) : null,
  };
}

t.test(
  'the CLI and an agent on another host reach an HTTPS-only server with the pinned fingerprint, and not with a wrong one',
  async (t) => {
    const directory = await tempDir(t);
    const namespace = await otherHost(t);
    const server = await startServer(t, { tls: true, listen: '0.0.0.0:0' });
    const url = `https://${namespace.serverAddress}:${new URL(server.url).port}`;
    const fingerprint = server.fingerprint!;
    const wrong = `${fingerprint.slice(0, -2)}${fingerprint.endsWith('00') ? '01' : '00'}`;

    const diskFile = path.join(directory, 'disk.img');
    const data = Buffer.alloc(16 * MiB);
    randomFillSync(data, 2 * MiB, 6 * MiB);
    await fs.writeFile(diskFile, data);
    const disk = (await attachLoop(t, diskFile)).device;

    const admin = {
      B365_SERVER: url,
      B365_TOKEN: server.adminToken,
      B365_STATE_DIR: path.join(directory, 'client-state'),
    };
    const plain = await b365In(namespace, ['images'], {
      ...admin,
      B365_SERVER: url.replace('https:', 'http:'),
      B365_INSECURE_HTTP: '1',
    });
    t.not(plain.exitCode, 0, 'plain HTTP gets nowhere: the server speaks HTTPS only');

    const refused = await b365In(namespace, ['images'], { ...admin, B365_FINGERPRINT: wrong });
    t.equal(refused.exitCode, 11, refused.stderr);
    t.match(refused.stderr, `expected ${wrong}, presented ${fingerprint}`);

    const listed = await b365In(namespace, ['images', '--json'], { ...admin, B365_FINGERPRINT: fingerprint });
    t.equal(listed.exitCode, 0, listed.stderr);

    const imaged = await b365In(namespace, ['image', disk, '--machine', 'remote', '--json'], {
      ...admin,
      B365_FINGERPRINT: fingerprint,
    });
    t.equal(imaged.exitCode, 0, imaged.stderr);
    t.ok(imaged.json.image, 'an image of the loop device was committed over HTTPS');
    t.equal(
      (await b365In(namespace, ['image', disk, '--machine', 'remote'], { ...admin, B365_FINGERPRINT: wrong })).exitCode,
      11,
      'a capture with a wrong pin is refused',
    );

    const token = await b365(['token', 'create', '--role', 'machine', '--machine', 'agent-host'], { env: server.env });
    t.equal(token.exitCode, 0, token.stderr);
    const policy = await b365(['policy', 'set', 'agent-host', '--disks', disk, '--raw', '--json'], { env: server.env });
    t.equal(policy.exitCode, 0, policy.stderr);
    const agentEnv = { B365_TOKEN: token.stdout.trim() };
    const agentArgs = (pin: string) => [
      'agent',
      'run',
      '--once',
      '--server',
      url,
      '--fingerprint',
      pin,
      '--state-dir',
      path.join(directory, `agent-${pin.slice(0, 2)}`),
    ];

    const agentRefused = await b365In(namespace, agentArgs(wrong), agentEnv);
    t.equal(agentRefused.exitCode, 11, agentRefused.stderr);
    t.match(agentRefused.stderr, `expected ${wrong}, presented ${fingerprint}`);

    const agentRun = await b365In(namespace, agentArgs(fingerprint), agentEnv);
    t.equal(agentRun.exitCode, 0, agentRun.stderr);
    t.match(agentRun.stdout, /run \S+: ok, image agent-host@/);
  },
);
