// Both units under a real systemd: the rescue image's Debian root (built by `make
// bootmedia`) booted as a container with systemd-nspawn, systemd as its PID 1, with this
// Node and this program bound in read-only. Inside, `b365 server install` and `b365 agent
// install` create, enable and start their services; the sandboxed server takes an upload,
// the sandboxed agent runs its schedule, and systemd itself rates both units. Skipped where
// the rescue base or systemd-nspawn is missing.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { MAIN_SCRIPT, programRoot } from '../../src/install/program.js';
import { tempDir } from '../helpers/tmp.js';

// Where the program is bound inside the container: a checkout under /tmp or /home would be
// hidden from the services by their own PrivateTmp= and ProtectHome=.
const PROGRAM_INSIDE = '/opt/backup365-under-test';

const cache = process.env.BOOTMEDIA_CACHE ?? '/var/cache/backup365/bootmedia';

function rescueBase(): string | null {
  const bases = fs.existsSync(cache) ? fs.readdirSync(cache).filter((name) => name.startsWith('base-')) : [];
  const images = bases
    .map((name) => path.join(cache, name, 'filesystem.squashfs'))
    .filter((file) => fs.existsSync(file));
  return images.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0] ?? null;
}

const hasNspawn =
  (await execa('systemd-nspawn', ['--version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0;
const base = rescueBase();
const skip = !hasNspawn
  ? 'systemd-nspawn is not installed (package systemd-container)'
  : !base
    ? `no rescue base under ${cache} (make bootmedia)`
    : false;

/** Runs inside the container as a oneshot service of its systemd; writes facts as NAME=VALUE lines. */
const PROBE = String.raw`#!/bin/sh
exec 2>>/probe/log >>/probe/log
fact() { echo "$1=$2" >> /probe/facts; }
b365() { /usr/bin/node "$MAIN" "$@"; }
exposure() { systemd-analyze security "$1" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'; }
b365 server install --allow-build-tree; fact server_install $?
for i in $(seq 1 120); do fp=$(b365 server fingerprint --repo /var/lib/backup365/repo 2>/dev/null) && b365 images --server https://127.0.0.1:8365 --fingerprint "$fp" --token "$(cat /var/lib/backup365/repo/admin.token 2>/dev/null)" >/dev/null 2>&1 && break; sleep 0.5; done
fact server_fingerprint "$fp"
pid=$(systemctl show -p MainPID --value backup365-server.service)
fact server_active "$(systemctl is-active backup365-server.service)"
fact server_uid "$(awk '/^Uid:/ {print $2}' /proc/$pid/status)"
fact backup365_uid "$(id -u backup365)"
fact server_capabilities "$(awk '/^CapEff:/ {print $2}' /proc/$pid/status)"
fact server_exposure "$(exposure backup365-server.service)"
export B365_SERVER=https://127.0.0.1:8365 B365_FINGERPRINT="$fp" B365_TOKEN="$(cat /var/lib/backup365/repo/admin.token)"
head -c 4194304 /dev/urandom > /root/disk.img
b365 image /root/disk.img --machine console --raw; fact server_upload $?
machine_token=$(b365 token create --role machine --machine box --json | sed -n 's/.*"token": "\([^"]*\)".*/\1/p')
b365 policy set box --schedule '*/2 * * * * *' --disks /root/disk.img --raw --spread 0s >/dev/null; fact policy $?
(unset B365_TOKEN; b365 agent install --server https://127.0.0.1:8365 --fingerprint "$fp" --token "$machine_token" --allow-build-tree); fact agent_install $?
deadline=$(($(date +%s) + 60))
while [ "$(date +%s)" -lt "$deadline" ]; do b365 reports --machine box --json | grep -q '"state": "ok"' && break; sleep 1; done
fact agent_run "$(b365 reports --machine box --json | grep -o '"state": "[a-z]*"' | head -1)"
fact agent_active "$(systemctl is-active backup365-agent.service)"
fact agent_exposure "$(exposure backup365-agent.service)"
systemctl reload backup365-server.service; sleep 1
fact server_after_reload "$(systemctl is-active backup365-server.service)"
fact server_after_reload_answers "$(b365 images >/dev/null 2>&1; echo $?)"
journalctl --no-pager -u backup365-server.service -u backup365-agent.service | tail -40
systemctl poweroff --no-block
`;

const PROBE_UNIT = `[Unit]
Description=checks the Backup365 units
After=multi-user.target
[Service]
Type=oneshot
Environment=MAIN=${PROGRAM_INSIDE}/${path.relative(programRoot(fs.realpathSync(MAIN_SCRIPT)), fs.realpathSync(MAIN_SCRIPT))}
ExecStart=/probe/probe.sh
TimeoutStartSec=240
[Install]
WantedBy=multi-user.target
`;

async function prepareRoot(directory: string, squashfs: string): Promise<string> {
  const root = path.join(directory, 'root');
  await execa('unsquashfs', ['-q', '-no-progress', '-d', root, squashfs]);
  await fsp.writeFile(path.join(root, 'etc/systemd/system/b365-probe.service'), PROBE_UNIT);
  await fsp.mkdir(path.join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
  await fsp.symlink(
    '/etc/systemd/system/b365-probe.service',
    path.join(root, 'etc/systemd/system/multi-user.target.wants/b365-probe.service'),
  );
  return root;
}

function readFacts(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

t.test('the server and agent units under systemd as PID 1', { skip }, async (t) => {
  const directory = await tempDir(t, 'b365-units-');
  const root = await prepareRoot(directory, base!);
  const probe = path.join(directory, 'probe');
  await fsp.mkdir(probe);
  await fsp.writeFile(path.join(probe, 'probe.sh'), PROBE, { mode: 0o755 });
  const program = programRoot(fs.realpathSync(MAIN_SCRIPT));
  const modules = fs.realpathSync(path.join(program, 'node_modules'));
  // A node_modules that is a link elsewhere is bound at its own path, where the link points.
  const binds = [`${program}:${PROGRAM_INSIDE}`, ...(modules === path.join(program, 'node_modules') ? [] : [modules])];
  const boot = await execa(
    'systemd-nspawn',
    [
      '-D',
      root,
      '--boot',
      '--register=no',
      '--keep-unit',
      '--console=pipe',
      '--private-network',
      `--bind=${probe}:/probe`,
      `--bind-ro=${fs.realpathSync(process.execPath)}:/usr/bin/node`,
      ...binds.map((bind) => `--bind-ro=${bind}`),
    ],
    { reject: false, timeout: 300_000 },
  );
  const log = await fsp.readFile(path.join(probe, 'log'), 'utf8').catch(() => '');
  const facts = readFacts(await fsp.readFile(path.join(probe, 'facts'), 'utf8').catch(() => ''));
  t.equal(boot.exitCode, 0, boot.exitCode === 0 ? 'the container booted and powered off' : `${boot.stderr}\n${log}`);
  t.equal(facts.server_install, '0', 'b365 server install enabled and started the service');
  t.match(
    facts.server_fingerprint,
    /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/,
    'the service made its certificate and clients pin it',
  );
  t.equal(facts.server_active, 'active', facts.server_active === 'active' ? 'the server service is active' : log);
  t.equal(facts.server_uid, facts.backup365_uid, 'the server runs as the backup365 user');
  t.equal(facts.server_capabilities, '0000000000000000', 'with no capability');
  t.ok(Number(facts.server_exposure) <= 2.5, `systemd rates the loaded server unit ${facts.server_exposure}`);
  t.equal(facts.server_upload, '0', 'the sandboxed server took an upload');
  t.equal(facts.agent_install, '0', 'b365 agent install enabled and started the agent');
  t.equal(facts.agent_run, '"state": "ok"', 'the sandboxed agent ran its schedule and reported');
  t.equal(facts.agent_active, 'active', 'the agent service is active');
  t.ok(Number(facts.agent_exposure) <= 5.0, `systemd rates the loaded agent unit ${facts.agent_exposure}`);
  t.equal(facts.server_after_reload, 'active', 'systemctl reload (SIGHUP) keeps the server running');
  t.equal(facts.server_after_reload_answers, '0', 'and answering over HTTPS with the same certificate');
});
