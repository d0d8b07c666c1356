// The agent's job inside the sandbox its unit asks systemd for. systemd is not PID 1
// on the test machines, so the parts of the sandbox that change what imaging sees are
// rebuilt with the kernel's own tools: a private mount namespace in which the root and
// the imaged filesystem's mount are read-only (ProtectSystem=strict, ProtectHome=read-only)
// but the state directory is writable (ReadWritePaths=), the unit's capability bounding
// set and no-new-privileges (setpriv). strace lists the system calls the job makes,
// which must all pass the unit's SystemCallFilter= (as systemd-analyze expands it).
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import t from 'tap';
import { agentInstallArgs } from '../helpers/agent-install.js';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { attachLoop, makeImageFile, MiB, mount, run, sfdisk } from '../helpers/disk.js';
import { startServer } from '../helpers/server.js';
import {
  allowedSocketFamilies,
  allowedSyscalls,
  execStart,
  mountSandboxArgs,
  tracedSocketFamilies,
  tracedSyscalls,
} from '../helpers/systemd.js';
import { tempDir } from '../helpers/tmp.js';

/** `CapabilityBoundingSet=CAP_SYS_ADMIN` as setpriv's `-all,+sys_admin`. */
function boundingSet(unit: string): string {
  const capabilities = /^CapabilityBoundingSet=(.*)$/m.exec(unit)![1]!.trim().split(/\s+/).filter(Boolean);
  return ['-all', ...capabilities.map((name) => `+${name.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
}

interface SandboxRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run the unit's ExecStart (plus `--once`) as the sandbox would, optionally under strace. */
async function runSandboxed(
  unit: string,
  options: { readOnlyMounts: string[]; writable: string; bounding: string; trace?: string },
): Promise<SandboxRun> {
  const command = [...execStart(unit), '--once'];
  const traced = options.trace ? ['strace', '-f', '-qq', '-o', options.trace, ...command] : command;
  // env -i: only the environment systemd would give (the test runner adds NODE_OPTIONS to children).
  const environment = ['env', '-i', `PATH=${process.env.PATH}`, 'B365_LOG_LEVEL=info', 'B365_RETRY_FOR_MS=1000'];
  const result = await execa(
    'unshare',
    mountSandboxArgs(options, [
      ...environment,
      'setpriv',
      `--bounding-set=${options.bounding}`,
      '--inh-caps=-all',
      '--no-new-privs',
      '--',
      ...traced,
    ]),
    {
      reject: false,
      timeout: 120_000,
    },
  );
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

t.test('the agent images a live disk inside its unit sandbox, and the sandbox is what lets it', async (t) => {
  const server = await startServer(t);
  const base = await tempDir(t, 'b365-sandbox-');
  const disk = await makeImageFile(path.join(base, 'live.img'), 64 * MiB);
  await sfdisk(disk, 'label: gpt\ntype=linux\n');
  const loop = await attachLoop(t, disk);
  await run('mkfs.ext4', ['-q', loop.partition(1)]);
  const mounted = await mount(t, loop.partition(1));
  await fs.writeFile(path.join(mounted.path, 'live.txt'), 'in use\n');

  const created = await api(server.url, 'POST', '/tokens', {
    token: server.adminToken,
    json: { role: 'machine', machine: 'sandboxed' },
  });
  t.equal(created.status, 201);
  const stateDir = path.join(base, 'state');
  const install = await b365(
    agentInstallArgs(
      {
        configDir: path.join(base, 'etc'),
        unitDir: path.join(base, 'units'),
        stateDir,
        server: server.url,
        token: created.body.token,
      },
      ['--no-start', '--no-check', '--allow-build-tree', '--json'],
    ),
  );
  t.equal(install.exitCode, 0, install.stderr);
  const unit = await fs.readFile(install.json.unit, 'utf8');
  const setPolicy = async (live: string) => {
    const policy = await b365(['policy', 'set', 'sandboxed', '--disks', loop.device, '--live', live, '--json'], {
      env: server.env,
    });
    t.equal(policy.exitCode, 0, policy.stderr);
  };
  // The sandbox makes every mount but the state directory read-only in the agent's view.
  const sandbox = { readOnlyMounts: ['/', mounted.path], writable: stateDir, bounding: boundingSet(unit) };

  await t.test(
    'a filesystem mounted read-write elsewhere is still live, though the sandbox shows it read-only',
    async (t) => {
      await setPolicy('refuse');
      const refused = await runSandboxed(unit, sandbox);
      t.not(refused.exitCode, 0, 'the run is refused');
      t.match(
        refused.stderr,
        new RegExp(`${loop.partition(1)} \\(ext4\\) mounted read-write at ${mounted.path}`),
        refused.stderr,
      );
    },
  );

  await t.test(
    'frozen capture works with the unit capability set; every system call passes the unit filter',
    async (t) => {
      await setPolicy('freeze');
      const trace = path.join(stateDir, 'agent.trace');
      const frozen = await runSandboxed(unit, { ...sandbox, trace });
      t.equal(frozen.exitCode, 0, frozen.exitCode === 0 ? 'the frozen run succeeds' : frozen.stderr);
      t.match(frozen.stdout, /: ok, image sandboxed@/);
      const written = fs.writeFile(path.join(mounted.path, 'after.txt'), 'writable again\n').then(() => 'written');
      t.equal(
        await Promise.race([written, sleep(10_000, 'still frozen', { ref: false })]),
        'written',
        'thawed after the run',
      );
      const allowed = await allowedSyscalls(unit);
      const used = await tracedSyscalls(trace);
      t.ok(used.has('ioctl') && used.size > 40, `the trace holds the run (${used.size} distinct system calls)`);
      t.same([...used].filter((name) => !allowed.has(name)).sort(), [], 'no system call outside SystemCallFilter=');
      const families = allowedSocketFamilies(unit);
      t.same(
        [...(await tracedSocketFamilies(trace))].filter((family) => !families.has(family)),
        [],
        'no socket outside RestrictAddressFamilies=',
      );
    },
  );

  await t.test('without CAP_SYS_ADMIN in the bounding set the freeze is refused', async (t) => {
    const bare = await runSandboxed(unit, { ...sandbox, bounding: '-all' });
    t.not(bare.exitCode, 0);
    t.match(bare.stderr, /cannot freeze/);
  });
});
