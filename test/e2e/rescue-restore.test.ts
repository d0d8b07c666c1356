// The rescue ISO restores a bootable disk unattended over HTTPS: a small Debian disk is
// imaged to a server on this host, the ISO boots in qemu with a blank disk and b365.* kernel
// parameters (the server's fingerprint among them), restores, powers off; then the restored
// disk must boot and print its marker.
import path from 'node:path';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { makeImageFile } from '../helpers/disk.js';
import { tableDump } from '../helpers/fixtures.js';
import { parseResultLine } from '../helpers/rescue.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { ensureIso, ensureTestDisk, extractBootFiles, liveAppend, serialLogPath, stage } from './helpers/artifacts.js';
import { GUEST_SERVER_URL, QemuGuest } from './helpers/qemu.js';

const MINUTE = 60_000;

if (process.env.B365_E2E !== '1') {
  t.plan(0, 'end-to-end tests run with `make e2e` (B365_E2E=1)');
} else {
  t.test('unattended restore from the rescue ISO, then the restored disk boots', async (t) => {
    const directory = await tempDir(t, 'b365-e2e-');
    const iso = await stage(t, 'rescue ISO', ensureIso);
    const boot = await extractBootFiles(iso, directory);
    const disk = await stage(t, 'bootable test disk', ensureTestDisk);
    const server = await startServer(t, { tls: true });
    t.match(server.url, /^https:\/\//, 'the server speaks HTTPS only');
    const port = Number(new URL(server.url).port);

    // The product's own capture: partition table, gaps raw, each filesystem's used blocks.
    const captured = await stage(t, 'image the test disk to the server', () =>
      b365(['image', disk.image, '--machine', 'e2e-vm', '--json'], { env: server.env }),
    );
    t.equal(captured.exitCode, 0, captured.stderr);
    const imageId = captured.json.image as string;
    const code = await b365(['restore-code', 'create', '--machine', 'e2e-vm', '--ttl', '2h', '--json'], {
      env: server.env,
    });
    t.equal(code.exitCode, 0, code.stderr);

    const target = await makeImageFile(path.join(directory, 'target.img'), 1 << 30);
    const rescue = await QemuGuest.start(t, {
      serialLog: await serialLogPath('unattended-restore'),
      kernel: {
        ...boot,
        append: liveAppend({
          'b365.server': GUEST_SERVER_URL,
          'b365.fingerprint': server.fingerprint!,
          'b365.code': code.json.code,
          'b365.machine': 'e2e-vm',
          'b365.image': 'latest',
          'b365.target': '/dev/vda',
          'b365.action': 'restore',
          'b365.after': 'poweroff',
          'b365.after-failure': 'poweroff',
        }),
      },
      cdrom: iso,
      disks: [{ file: target, serial: 'B365-E2E-TARGET' }],
      hostPort: port,
    });
    await stage(t, 'rescue system boots and starts b365', () =>
      rescue.waitFor(/B365: unattended restore/, 15 * MINUTE),
    );
    await rescue.waitFor(
      new RegExp(`B365: the server's certificate must have SHA-256 fingerprint ${server.fingerprint}`),
      MINUTE,
    );
    const line = await stage(t, 'restore in the guest', () => rescue.waitForResult(20 * MINUTE));
    const result = parseResultLine(line);
    t.equal(result.status, 'ok', line);
    t.equal(result.action, 'restore');
    t.equal(result.image, imageId, 'the latest image was restored');
    t.equal(result.target, '/dev/vda');
    t.equal(result.verified, 'yes');
    t.match(await rescue.serial(), /B365: check ok: content digest of p\d/, 'the restore checks are printed');
    await stage(t, 'guest powers off', () => rescue.waitForExit(5 * MINUTE));
    t.equal(await tableDump(target), await tableDump(disk.image), 'the restored partition table is the imaged one');

    const restored = await QemuGuest.start(t, {
      serialLog: await serialLogPath('restored-disk'),
      disks: [{ file: target }],
    });
    const [, bootedId, root] = await stage(t, 'restored disk boots (BIOS)', () =>
      restored.waitFor(/B365-TESTDISK-BOOTED id=(\w+) root=(\S+)\s/, 10 * MINUTE),
    );
    t.equal(bootedId, disk.id, 'the restored disk booted and printed its own marker');
    t.equal(root, '/dev/vda3', 'its root filesystem is the restored partition');
    await restored.kill();
  });
}
