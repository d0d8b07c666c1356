// The rescue ISO boots by its own boot loader: through UEFI (OVMF) from a USB stick
// written with dd, and through BIOS from a CD, each far enough that the rescue program
// greets on the serial console. The kernel parameters here come from the ISO's grub.cfg.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { VERSION } from '../../src/core/version.js';
import { tempDir } from '../helpers/tmp.js';
import { ensureIso, OVMF, serialLogPath, stage } from './helpers/artifacts.js';
import { QemuGuest } from './helpers/qemu.js';

const MINUTE = 60_000;
const BANNER = /Backup365 rescue \d+\.\d+\.\d+/;

if (process.env.B365_E2E !== '1') {
  t.plan(0, 'end-to-end tests run with `make e2e` (B365_E2E=1)');
} else {
  t.test('UEFI: a USB stick written with dd boots to the rescue program', async (t) => {
    const directory = await tempDir(t, 'b365-e2e-');
    const iso = await stage(t, 'rescue ISO', ensureIso);
    // What `dd if=b365-rescue.iso of=/dev/sdX` leaves on a stick: the same bytes.
    const stick = path.join(directory, 'stick.img');
    await fs.copyFile(iso, stick);
    const guest = await QemuGuest.start(t, {
      serialLog: await serialLogPath('uefi-usb-stick'),
      uefi: OVMF,
      usbStick: stick,
    });
    await stage(t, 'UEFI firmware reaches the boot menu', () =>
      guest.waitFor(/Backup365 rescue, copied to memory/, 10 * MINUTE),
    );
    const [banner] = await stage(t, 'rescue program starts', () => guest.waitFor(BANNER, 15 * MINUTE));
    t.equal(banner, `Backup365 rescue ${VERSION}`, 'the ISO carries this version of b365');
    await guest.waitFor(/How should this machine join the network/, 5 * MINUTE);
    const serial = await guest.serial();
    t.ok(
      serial.indexOf(banner) < serial.indexOf('How should this machine join the network'),
      'the first question follows the greeting on the serial console',
    );
  });

  t.test('BIOS: the CD boots to the rescue program', async (t) => {
    const iso = await ensureIso();
    const guest = await QemuGuest.start(t, { serialLog: await serialLogPath('bios-cd'), cdrom: iso });
    await stage(t, 'BIOS reaches the boot menu', () =>
      guest.waitFor(/Backup365 rescue, copied to memory/, 10 * MINUTE),
    );
    const [banner] = await stage(t, 'rescue program starts', () => guest.waitFor(BANNER, 15 * MINUTE));
    t.equal(banner, `Backup365 rescue ${VERSION}`, 'the ISO carries this version of b365');
  });
}
