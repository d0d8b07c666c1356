// Kernel command line parsing for unattended rescue runs: every setting, and a clear
// refusal for each malformed one, before anything could touch a disk.
import t from 'tap';
import { UsageError } from '../../src/core/errors.js';
import {
  kernelFingerprint,
  parseKernelCommandLine,
  serveSettings,
  unattendedSettings,
} from '../../src/rescue/cmdline.js';

const base = 'BOOT_IMAGE=/live/vmlinuz boot=live quiet console=ttyS0,115200';

t.test('parses parameters, flags and quoted values', async (t) => {
  const parameters = parseKernelCommandLine(
    `${base} splash b365.note="two words" b365.server=http://10.0.2.100:8365/\n`,
  );
  t.equal(parameters.get('boot'), 'live');
  t.equal(parameters.get('console'), 'ttyS0,115200');
  t.equal(parameters.get('splash'), '');
  t.equal(parameters.get('b365.note'), 'two words');
  t.equal(parameters.get('b365.server'), 'http://10.0.2.100:8365/');
});

t.test('no b365.action: no unattended run', async (t) => {
  t.equal(unattendedSettings(parseKernelCommandLine(base)), null);
});

t.test('a full restore request', async (t) => {
  const settings = unattendedSettings(
    parseKernelCommandLine(
      `${base} b365.server=http://backup:8365/ b365.code=k7qm-2xpt-9d4f b365.machine=web01 b365.image=20261126T020013Z b365.target=/dev/vda b365.action=restore b365.after=poweroff`,
    ),
  );
  t.same(settings, {
    action: 'restore',
    server: 'http://backup:8365',
    fingerprint: null,
    code: 'k7qm-2xpt-9d4f',
    token: null,
    machine: 'web01',
    image: '20261126T020013Z',
    disk: '/dev/vda',
    after: 'poweroff',
    afterFailure: 'shell',
    network: { mode: 'dhcp', interface: null },
    diskWaitSeconds: 60,
  });
});

t.test('defaults and a static network', async (t) => {
  const settings = unattendedSettings(
    parseKernelCommandLine(
      'b365.action=capture b365.server=https://b b365.token=secret b365.machine=db1 b365.source=/dev/sda b365.ip=192.168.1.20/24 b365.gw=192.168.1.1 b365.dns=1.1.1.1,9.9.9.9 b365.iface=eno1',
    ),
  )!;
  t.equal(settings.action, 'capture');
  t.equal(settings.disk, '/dev/sda');
  t.equal(settings.image, 'latest');
  t.equal(settings.after, 'shell');
  t.same(settings.network, {
    mode: 'static',
    interface: 'eno1',
    address: '192.168.1.20/24',
    gateway: '192.168.1.1',
    dns: ['1.1.1.1', '9.9.9.9'],
  });
});

t.test('b365.fingerprint= is taken in any common spelling and kept in canonical form', async (t) => {
  const hex = 'ab'.repeat(32);
  const canonical = Array.from({ length: 32 }, () => 'AB').join(':');
  for (const spelling of [hex, hex.toUpperCase(), canonical, canonical.toLowerCase(), `sha256:${hex}`]) {
    const settings = unattendedSettings(
      parseKernelCommandLine(
        `b365.action=restore b365.server=https://backup:8365 b365.code=X b365.target=/dev/vda b365.fingerprint=${spelling}`,
      ),
    )!;
    t.equal(settings.fingerprint, canonical, spelling);
  }
  t.equal(kernelFingerprint(parseKernelCommandLine(base)), null, 'none given: none pinned');
});

t.test('refusals name the parameter at fault', async (t) => {
  const cases: [string, RegExp][] = [
    ['b365.action=format', /b365.action=format: use restore or capture/],
    ['b365.action=restore b365.code=X b365.target=/dev/vda', /b365.server=URL is missing/],
    ['b365.action=restore b365.server=ftp://x b365.code=X b365.target=/dev/vda', /must start with http/],
    ['b365.action=restore b365.server=http://x b365.target=/dev/vda', /b365.code=RESTORE-CODE/],
    ['b365.action=restore b365.server=http://x b365.code=X', /b365.target=\/dev\/DISK is missing/],
    ['b365.action=restore b365.server=http://x b365.code=X b365.target=vda', /name a disk under \/dev/],
    ['b365.action=capture b365.server=http://x b365.token=X b365.source=/dev/vda', /needs b365.machine=NAME/],
    [
      'b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.machine=bad/name',
      /invalid machine name/,
    ],
    [
      'b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.after=halt',
      /b365.after=halt: use one of poweroff, reboot, shell/,
    ],
    ['b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.net=static', /needs b365.ip/],
    [
      'b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.ip=300.1.1.1/24',
      /not an IPv4 address/,
    ],
    [
      'b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.ip=10.1.1.1',
      /with a prefix length/,
    ],
    [
      'b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.net=wifi',
      /use dhcp, static or none/,
    ],
    ['b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.disk-wait=soon', /whole seconds/],
    [
      'b365.action=restore b365.server=https://x b365.code=X b365.target=/dev/vda b365.fingerprint=12:34',
      /^b365.fingerprint=12:34: /,
    ],
    [
      'b365.action=restore b365.server=https://x b365.code=X b365.target=/dev/vda b365.fingerprint=zz',
      /^b365.fingerprint=zz: /,
    ],
    [
      `b365.action=restore b365.server=http://x b365.code=X b365.target=/dev/vda b365.fingerprint=${'ab'.repeat(32)}`,
      /plain HTTP: give an https:\/\/ URL/,
    ],
  ];
  for (const [text, message] of cases) {
    t.throws(() => unattendedSettings(parseKernelCommandLine(text)), { name: 'UsageError', message }, text);
    t.throws(() => unattendedSettings(parseKernelCommandLine(text)), UsageError);
  }
});

t.test('b365.serve: serve the repository on a disk', async (t) => {
  t.equal(serveSettings(parseKernelCommandLine(base)), null);
  t.same(serveSettings(parseKernelCommandLine(`${base} b365.serve=/dev/vdb`)), {
    device: '/dev/vdb',
    listen: '0.0.0.0:8365',
    network: { mode: 'dhcp', interface: null },
    diskWaitSeconds: 60,
  });
  const settings = serveSettings(
    parseKernelCommandLine(
      'b365.serve=/dev/sdb1 b365.listen=192.168.1.20:9000 b365.ip=192.168.1.20/24 b365.disk-wait=5',
    ),
  )!;
  t.equal(settings.listen, '192.168.1.20:9000');
  t.equal(settings.diskWaitSeconds, 5);
  t.same(settings.network, { mode: 'static', interface: null, address: '192.168.1.20/24', gateway: null, dns: [] });
});

t.test('b365.serve refusals name the parameter at fault', async (t) => {
  const cases: [string, RegExp][] = [
    ['b365.serve=vdb', /b365.serve=vdb: name the repository's disk under \/dev/],
    ['b365.serve=', /b365.serve=: name the repository's disk/],
    ['b365.serve=/dev/vdb b365.listen=8365', /b365.listen=8365: give host:port/],
    ['b365.serve=/dev/vdb b365.listen=0.0.0.0:70000', /b365.listen=0.0.0.0:70000: give host:port/],
    ['b365.serve=/dev/vdb b365.action=restore', /exclude each other/],
    ['b365.serve=/dev/vdb b365.net=static', /needs b365.ip/],
  ];
  for (const [text, message] of cases)
    t.throws(() => serveSettings(parseKernelCommandLine(text)), { name: 'UsageError', message }, text);
});
