// `b365 server install`: the unit it writes and what systemd-analyze rates it, the
// system user it creates, its refusals; and the server itself run the way that unit
// runs it (unprivileged user, no capabilities, no new privileges, a read-only system
// but for its repository), with every system call it makes checked against the unit's
// SystemCallFilter=. systemd is not PID 1 on the test machines, hence the kernel's tools.
import { randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { printedFingerprint, serverListening } from '../helpers/server.js';
import {
  allowedSocketFamilies,
  allowedSyscalls,
  execStart,
  mountSandboxArgs,
  exposure,
  tracedSocketFamilies,
  tracedSyscalls,
  verifyUnit,
} from '../helpers/systemd.js';
import { tempDir } from '../helpers/tmp.js';

const systemdRuns = await fs.stat('/run/systemd/system').then(
  () => true,
  () => false,
);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('the printed unit: the installed defaults, and an exposure of 2.5 or better', async (t) => {
  const printed = await b365(['server', 'install', '--print', '--allow-build-tree']);
  t.equal(printed.exitCode, 0, printed.stderr);
  const unit = printed.stdout;
  const command = execStart(unit);
  t.ok(
    path.isAbsolute(command[0]!) && command.includes('--initial-heap-size=64'),
    'node by absolute path, with the server heap options',
  );
  t.same(command.slice(-5), ['server', '--repo', '/var/lib/backup365/repo', '--listen', '0.0.0.0:8365']);
  for (const line of [
    'User=backup365',
    'StateDirectory=backup365',
    'CapabilityBoundingSet=',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateUsers=yes',
    'UMask=0077',
    'ExecReload=/bin/kill -HUP $MAINPID',
  ]) {
    t.match(unit, new RegExp(`^${line.replace(/[$]/g, '\\$')}$`, 'm'), line);
  }
  t.notMatch(unit, /^ReadWritePaths=/m, 'the repository is inside the state directory');
  const directory = await tempDir(t, 'b365-server-unit-');
  const file = path.join(directory, 'backup365-server.service');
  await fs.writeFile(file, unit);
  t.equal(await verifyUnit(file), '', 'systemd-analyze verify accepts every line');
  const { score, report } = await exposure(file);
  t.ok(score <= 2.5, score <= 2.5 ? `exposure ${score} <= 2.5` : report);
});

t.test('a port below 1024 keeps exactly CAP_NET_BIND_SERVICE', async (t) => {
  const printed = await b365(['server', 'install', '--print', '--allow-build-tree', '--listen', '0.0.0.0:443']);
  t.equal(printed.exitCode, 0, printed.stderr);
  t.match(printed.stdout, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
});

t.test('the service serves the certificate and names it is given, by absolute paths', async (t) => {
  const directory = await tempDir(t, 'b365-server-unit-tls-');
  const printed = await b365(
    [
      'server',
      'install',
      '--print',
      '--allow-build-tree',
      '--tls-name',
      'backup.example.org',
      '--tls-name',
      '192.0.2.7',
      '--tls-cert',
      'site.crt',
      '--tls-key',
      'site.key',
    ],
    { cwd: directory },
  );
  t.equal(printed.exitCode, 0, printed.stderr);
  t.same(execStart(printed.stdout).slice(-8), [
    '--tls-cert',
    path.join(directory, 'site.crt'),
    '--tls-key',
    path.join(directory, 'site.key'),
    '--tls-name',
    'backup.example.org',
    '--tls-name',
    '192.0.2.7',
  ]);
  const half = await b365(['server', 'install', '--print', '--allow-build-tree', '--tls-cert', '/etc/site.crt']);
  t.equal(half.exitCode, 2, 'a certificate without its key is refused');
  t.match(half.stderr, /--tls-cert and --tls-key go together/);
});

t.test('Node cannot run under MemoryDenyWriteExecute, so the unit does not ask for it', async (t) => {
  t.notMatch(
    (await b365(['server', 'install', '--print', '--allow-build-tree'])).stdout,
    /^MemoryDenyWriteExecute=yes/m,
  );
  // PR_SET_MDWE (Linux 6.3) is the kernel's own form of the same rule.
  const script =
    'import ctypes,os,sys\nif ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)\nos.execv(sys.argv[1], [sys.argv[1], "-e", "let s = 0; for (let i = 0; i < 1e7; i++) s += i; console.log(s)"])';
  const result = await execa('python3', ['-c', script, process.execPath], { reject: false });
  if (result.exitCode === 77)
    return void t.skip('this kernel has no PR_SET_MDWE (Linux 6.3 and later have it)', () => {});
  t.not(result.exitCode, 0, 'node dies when memory may not be written and executed');
  t.match(String(result.stderr), /Fatal error|Check failed/);
});

t.test('the unit must not run a build tree unless told so', async (t) => {
  const directory = await tempDir(t, 'b365-server-unit-');
  const refused = await b365(['server', 'install', '--unit-dir', directory, '--no-create-user', '--no-start']);
  t.equal(refused.exitCode, 2);
  t.match(refused.stderr, /^b365: refusing to write a service that runs \S+main\.js: .* pass --allow-build-tree/);
  t.same(await fs.readdir(directory), []);
});

t.test(
  'install: creates the system user, gives it the repository, writes the unit; says why nothing was enabled',
  { skip: systemdRuns && 'systemd runs here: enabling would really happen' },
  async (t) => {
    const directory = await tempDir(t, 'b365-server-unit-');
    const user = `b365t${randomBytes(3).toString('hex')}`;
    t.teardown(() => execa('userdel', [user], { reject: false }));
    const repo = path.join(directory, 'repo');
    const installArgs = (...flags: string[]) => [
      'server',
      'install',
      '--unit-dir',
      directory,
      '--user',
      user,
      '--repo',
      repo,
      '--allow-build-tree',
      ...flags,
    ];
    const install = await b365(installArgs());
    t.equal(install.exitCode, 1);
    t.match(install.stdout, `server service written: ${path.join(directory, 'backup365-server.service')}`);
    t.match(install.stdout, `as user ${user} (created now)`);
    t.match(
      install.stderr,
      /^b365: systemd is not running on this machine \(PID 1 is [^)]+\), so backup365-server\.service was written but not enabled; where systemd runs, enable it with: systemctl daemon-reload && systemctl enable --now backup365-server\.service\n$/,
    );
    const account = (await execa('getent', ['passwd', user])).stdout.split(':');
    t.equal(account[5], '/var/lib/backup365');
    t.equal(account[6], '/usr/sbin/nologin');
    const stats = await fs.stat(repo);
    t.equal(stats.uid, Number(account[2]), 'the repository belongs to the service user');
    t.equal(stats.mode & 0o777, 0o700);
    const unit = await fs.readFile(path.join(directory, 'backup365-server.service'), 'utf8');
    t.match(unit, new RegExp(`^User=${user}$`, 'm'));
    t.match(
      unit,
      new RegExp(`^ReadWritePaths=${repo}$`, 'm'),
      'a repository outside the state directory is named writable',
    );

    const again = await b365(installArgs('--no-start', '--json'));
    t.equal(again.exitCode, 0, again.stderr);
    t.equal(again.json.userCreated, false, 'an existing user is kept');
  },
);

t.test(
  'the server in the unit sandbox serves an upload and a verification; every system call passes the filter',
  async (t) => {
    const base = await tempDir(t, 'b365-server-sandbox-');
    const repo = path.join(base, 'repo');
    const printed = await b365([
      'server',
      'install',
      '--print',
      '--allow-build-tree',
      '--repo',
      repo,
      '--listen',
      `127.0.0.1:${await freePort()}`,
    ]);
    t.equal(printed.exitCode, 0, printed.stderr);
    const unit = printed.stdout;
    await fs.mkdir(repo, { mode: 0o700 });
    await fs.chown(base, 65534, 65534);
    await fs.chown(repo, 65534, 65534);
    const trace = path.join(base, 'server.trace');
    // As the unit: ProtectSystem=strict with ReadWritePaths= the repository, a user without
    // capabilities (nobody stands in for the service user), NoNewPrivileges=, systemd's environment.
    const sandbox = [
      'env',
      '-i',
      `PATH=${process.env.PATH}`,
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--no-new-privs',
      '--bounding-set=-all',
      '--inh-caps=-all',
      '--',
    ];
    const child = execa(
      'unshare',
      mountSandboxArgs({ writable: base, readOnlyMounts: ['/'] }, [
        ...sandbox,
        'strace',
        '-f',
        '-qq',
        '-o',
        trace,
        ...execStart(unit),
      ]),
      { reject: false, buffer: false, stdout: 'pipe', stderr: 'ignore' },
    );
    t.teardown(async () => {
      child.kill('SIGKILL');
      await child;
    });
    // The unit serves HTTPS with the certificate it made on first start, under the same sandbox.
    const { url, output } = await serverListening(child);
    t.match(url, /^https:/, 'the unit serves HTTPS');
    const env = {
      B365_SERVER: url,
      B365_FINGERPRINT: printedFingerprint(output()) ?? 'none printed',
      B365_TOKEN: (await fs.readFile(path.join(repo, 'admin.token'), 'utf8')).trim(),
      B365_STATE_DIR: path.join(base, 'client'),
    };
    const disk = path.join(base, 'disk.img');
    await fs.writeFile(disk, randomFillSync(Buffer.alloc(4 << 20)));
    const image = await b365(['image', disk, '--machine', 'sandboxed', '--raw'], { env });
    t.equal(image.exitCode, 0, image.exitCode === 0 ? 'an image was uploaded' : image.stderr);
    const verify = await b365(['verify', 'run', '--all', '--level', 'restore-stream'], { env });
    t.equal(verify.exitCode, 0, verify.exitCode === 0 ? 'and verified to the restore stream' : verify.stderr);
    // The service's main process is strace's child; SIGTERM to it is what systemctl stop sends.
    const server = (await execa('pgrep', ['-P', String(child.pid)])).stdout.trim();
    await execa('kill', ['-TERM', server]);
    await child;
    const used = await tracedSyscalls(trace);
    t.ok(
      used.has('accept4') && used.has('fdatasync'),
      `the trace holds the requests (${used.size} distinct system calls)`,
    );
    const allowed = await allowedSyscalls(unit);
    t.same([...used].filter((name) => !allowed.has(name)).sort(), [], 'no system call outside SystemCallFilter=');
    const families = allowedSocketFamilies(unit);
    t.same(
      [...(await tracedSocketFamilies(trace))].filter((family) => !families.has(family)),
      [],
      'no socket outside RestrictAddressFamilies=',
    );
  },
);
