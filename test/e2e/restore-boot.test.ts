// A disk that boots, imaged and restored by the CLI on this host: a small Debian disk
// (GPT: BIOS boot, ESP, ext4 root with GRUB), captured with used blocks only, restored
// onto a blank disk of the same size and onto one twice the size with --grow; each
// restored disk must boot in qemu (TCG) and print its own marker.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { makeImageFile } from '../helpers/disk.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { ensureTestDisk, serialLogPath, stage } from './helpers/artifacts.js';
import { QemuGuest } from './helpers/qemu.js';

const MINUTE = 60_000;

if (process.env.B365_E2E !== '1') {
  t.plan(0, 'end-to-end tests run with `make e2e` (B365_E2E=1)');
} else {
  t.test('a restored disk boots', async (t) => {
    const directory = await tempDir(t, 'b365-e2e-');
    const disk = await stage(t, 'bootable test disk', ensureTestDisk);
    const server = await startServer(t);
    const captured = await stage(t, 'image the test disk', () =>
      b365(['image', disk.image, '--machine', 'boot-vm', '--json'], { env: server.env }),
    );
    t.equal(captured.exitCode, 0, captured.stderr);
    t.ok(
      captured.json.volumes.some((volume: { method: string }) => volume.method === 'used-blocks'),
      'filesystems were captured by their used blocks',
    );

    for (const [name, factor, extra] of [
      ['same size', 1, []],
      ['twice the size, grown', 2, ['--grow']],
    ] as const) {
      const target = await makeImageFile(
        path.join(directory, `restored-${factor}.img`),
        (await fs.stat(disk.image)).size * factor,
      );
      const restored = await stage(t, `restore onto a blank disk, ${name}`, () =>
        b365(['restore', 'boot-vm@latest', '--to', target, '--yes', '--json', ...extra], { env: server.env }),
      );
      t.equal(restored.exitCode, 0, restored.stderr);
      t.equal(restored.json.verified, true, `${name}: content digests, fsck and /etc/fstab checks pass`);
      t.ok(
        restored.json.checks.some((check: { check: string }) => check.check.startsWith('/etc/fstab')),
        "the restored root's fstab was checked",
      );
      const guest = await QemuGuest.start(t, {
        serialLog: await serialLogPath(`restored-boot-${factor}`),
        disks: [{ file: target }],
      });
      const [, bootedId] = await stage(t, `${name}: the restored disk boots (BIOS)`, () =>
        guest.waitFor(/B365-TESTDISK-BOOTED id=(\w+) root=(\S+)\s/, 10 * MINUTE),
      );
      t.equal(bootedId, disk.id, `${name}: it printed its own marker`);
      await guest.kill();
    }
  });
}
