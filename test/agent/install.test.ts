// `b365 agent install` as an admin runs it: the unit it writes (its exposure as
// systemd-analyze rates it), paths made absolute, a private state directory, a clear
// refusal where systemd does not run; and which token the installed agent then uses.
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { agentInstallArgs, installPlacesUnder, UNREACHABLE_SERVER } from '../helpers/agent-install.js';
import { api } from '../helpers/api.js';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { startServer } from '../helpers/server.js';
import { exposure, verifyUnit } from '../helpers/systemd.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;

t.test('the agent unit is rated 5.0 or better by systemd-analyze security', async (t) => {
  const base = await tempDir(t, 'b365-agent-install-');
  const install = await b365(
    agentInstallArgs(installPlacesUnder(base), ['--no-start', '--no-check', '--allow-build-tree', '--json']),
  );
  t.equal(install.exitCode, 0, install.stderr);
  t.equal(await verifyUnit(install.json.unit), '', 'systemd-analyze verify accepts every line');
  const { score, report } = await exposure(install.json.unit);
  t.ok(score <= 5.0, score <= 5.0 ? `exposure ${score} <= 5.0` : report);
  const unit = await fs.readFile(install.json.unit, 'utf8');
  t.match(unit, /^CapabilityBoundingSet=CAP_SYS_ADMIN$/m, 'fsfreeze needs CAP_SYS_ADMIN, nothing else is kept');
  t.match(
    unit,
    new RegExp(`^ReadWritePaths=${path.join(base, 'state')}$`, 'm'),
    'its state directory is the one place it writes',
  );
  t.match(unit, /^DeviceAllow=block-\* r$/m, 'block devices, read-only');
  t.notMatch(unit, /^MemoryDenyWriteExecute=yes/m, "V8's compiler needs memory it writes and executes");
});

t.test('relative paths are resolved against the current directory and printed', async (t) => {
  const base = await tempDir(t, 'b365-agent-install-');
  const result = await execa(
    process.execPath,
    [
      CLI_MAIN,
      ...agentInstallArgs({ configDir: 'etc', unitDir: 'units', stateDir: 'state' }, [
        '--no-start',
        '--no-check',
        '--allow-build-tree',
      ]),
    ],
    { cwd: base, reject: false },
  );
  t.equal(result.exitCode, 0, String(result.stderr));
  const config = path.join(base, 'etc', 'agent.json');
  const unit = await fs.readFile(path.join(base, 'units', 'backup365-agent.service'), 'utf8');
  t.match(
    /^ExecStart=(.*)$/m.exec(unit)![1],
    new RegExp(` agent run --config ${config}$`),
    'the unit names the configuration by its absolute path',
  );
  t.same(JSON.parse(await fs.readFile(config, 'utf8')), {
    server: UNREACHABLE_SERVER,
    tokenFile: path.join(base, 'etc', 'agent.token'),
    stateDirectory: path.join(base, 'state'),
  });
  t.match(String(result.stdout), `configuration ${config}`);
  t.match(String(result.stdout), `state ${path.join(base, 'state')} (0700)`);
});

t.test('an existing state directory is made private', async (t) => {
  const base = await tempDir(t, 'b365-agent-install-');
  const state = path.join(base, 'state');
  await fs.mkdir(state, { mode: 0o755 });
  await fs.chmod(state, 0o755);
  const install = await b365(
    agentInstallArgs({ ...installPlacesUnder(base), stateDir: state }, [
      '--no-start',
      '--no-check',
      '--allow-build-tree',
    ]),
  );
  t.equal(install.exitCode, 0, install.stderr);
  t.equal((await fs.stat(state)).mode & 0o777, 0o700);
});

const systemdRuns = await fs.stat('/run/systemd/system').then(
  () => true,
  () => false,
);

t.test(
  'without systemd: says what it wrote, then fails with a clear message',
  { skip: systemdRuns && 'systemd runs here: enabling would really happen' },
  async (t) => {
    const base = await tempDir(t, 'b365-agent-install-');
    const install = await b365(agentInstallArgs(installPlacesUnder(base), ['--no-check', '--allow-build-tree']));
    t.equal(install.exitCode, 1);
    t.match(
      install.stderr,
      /^the agent's connection, to run it by hand or install it elsewhere:\n {2}b365 agent install --server \S+ --token-file \S+\nb365: systemd is not running on this machine \(PID 1 is [^)]+\), so backup365-agent\.service was written but not enabled; where systemd runs, enable it with: systemctl daemon-reload && systemctl enable --now backup365-agent\.service\n$/,
    );
    t.notMatch(install.stderr, /\n\s+at /, 'no stack trace');
    t.match(
      install.stdout,
      `service ${path.join(base, 'backup365-agent.service')}`,
      'what was written is listed first',
    );
    for (const file of ['backup365-agent.service', 'etc/agent.json', 'etc/agent.token'])
      t.ok(await fs.stat(path.join(base, file)).catch(() => null), `${file} was written`);
  },
);

t.test('the service must not run a build tree unless told so', async (t) => {
  const base = await tempDir(t, 'b365-agent-install-');
  const install = await b365(agentInstallArgs(installPlacesUnder(base), ['--no-start', '--no-check']));
  t.equal(install.exitCode, 2);
  t.match(install.stderr, /refusing to write a service that runs .*main\.js: .*--allow-build-tree/);
  t.same(await fs.readdir(base), [], 'nothing was written');
});

t.test("the configuration's token wins over B365_TOKEN, and the log names its source, never the token", async (t) => {
  const server = await startServer(t);
  const base = await tempDir(t, 'b365-agent-token-');
  const created = await api(server.url, 'POST', '/tokens', {
    token: server.adminToken,
    json: { role: 'machine', machine: 'tokened' },
  });
  const machineToken = created.body.token as string;
  const disk = path.join(base, 'disk.img');
  await fs.writeFile(disk, randomFillSync(Buffer.alloc(2 * MiB)));
  const policy = await b365(['policy', 'set', 'tokened', '--disks', disk, '--raw'], { env: server.env });
  t.equal(policy.exitCode, 0, policy.stderr);
  const install = await b365(
    agentInstallArgs({ ...installPlacesUnder(base), server: server.url, token: machineToken }, [
      '--no-start',
      '--allow-build-tree',
      '--json',
    ]),
  );
  t.equal(install.exitCode, 0, install.stderr);

  const staleToken = 'b365_stale_token_from_some_environment';
  const configured = await b365(['agent', 'run', '--once', '--config', install.json.config], {
    env: { B365_TOKEN: staleToken, B365_LOG_LEVEL: 'info' },
  });
  t.equal(configured.exitCode, 0, configured.stderr);
  t.match(configured.stderr, `"msg":"token from ${install.json.config} (token file ${install.json.tokenFile})"`);
  t.match(configured.stderr, /"msg":"B365_TOKEN is set but not used: the configuration's token wins"/);
  for (const secret of [machineToken, staleToken]) t.notOk(configured.stderr.includes(secret), 'no token in the log');

  const fromEnvironment = await b365(
    ['agent', 'run', '--once', '--server', server.url, '--state-dir', path.join(base, 'state2')],
    { env: { B365_TOKEN: machineToken, B365_LOG_LEVEL: 'info' } },
  );
  t.equal(fromEnvironment.exitCode, 0, fromEnvironment.stderr);
  t.match(fromEnvironment.stderr, /"msg":"token from B365_TOKEN"/);
  t.notOk(fromEnvironment.stderr.includes(machineToken), 'no token in the log');
});
