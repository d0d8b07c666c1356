// Disk listing for the rescue program: lsblk's JSON parsed into candidates, the disk
// of the image recognised by its serial, and the refusals that protect the wrong disk.
import path from 'node:path';
import t from 'tap';
import { FormatError, UnsafeTargetError } from '../../src/core/errors.js';
import {
  assertWritable,
  confirmsDisk,
  diskWithSerial,
  listDisks,
  offeredDisks,
  parseLsblk,
  waitForDisk,
} from '../../src/rescue/disks.js';
import { attachLoop, makeImageFile, MiB } from '../helpers/disk.js';
import { tempDir } from '../helpers/tmp.js';

const sample = JSON.stringify({
  blockdevices: [
    {
      name: 'sda',
      path: '/dev/sda',
      type: 'disk',
      size: 500107862016,
      model: 'Samsung SSD 860 ',
      serial: 'S3Z9NB0K123',
      tran: 'sata',
      rm: false,
      ro: false,
      mountpoints: [null],
      children: [{ name: 'sda1', path: '/dev/sda1', type: 'part', size: 1, mountpoints: ['/mnt/old'] }],
    },
    {
      name: 'sdb',
      path: '/dev/sdb',
      type: 'disk',
      size: 16008609792,
      model: 'Cruzer',
      serial: 'USB123',
      tran: 'usb',
      rm: true,
      ro: false,
      mountpoints: [null],
      children: [{ name: 'sdb1', type: 'part', size: 1, mountpoints: ['/run/live/medium'] }],
    },
    {
      name: 'nvme0n1',
      path: '/dev/nvme0n1',
      type: 'disk',
      size: 1024209543168,
      model: 'WD Blue SN570',
      serial: 'WD-22',
      tran: 'nvme',
      rm: false,
      ro: false,
      mountpoints: [null],
    },
    {
      name: 'sr0',
      path: '/dev/sr0',
      type: 'rom',
      size: 233533440,
      model: 'QEMU DVD-ROM',
      serial: null,
      tran: 'sata',
      rm: true,
      ro: false,
      mountpoints: [null],
    },
    { name: 'vdz', path: '/dev/vdz', type: 'disk', size: 0, mountpoints: [null] },
  ],
});

t.test('lsblk JSON becomes disk candidates', async (t) => {
  const disks = parseLsblk(sample, 'sdb');
  t.same(
    disks.map((disk) => disk.name),
    ['sda', 'sdb', 'nvme0n1'],
    'whole disks with a size; no CD, no empty slot',
  );
  const [sda, sdb, nvme] = disks;
  t.equal(sda!.model, 'Samsung SSD 860', 'model trimmed');
  t.same(sda!.mounted, ['/mnt/old'], 'mounted partitions are found');
  t.equal(sdb!.rescueMedium, true);
  t.equal(nvme!.serial, 'WD-22');
  t.same(
    offeredDisks(disks).map((disk) => disk.name),
    ['sda', 'nvme0n1'],
    'the rescue stick is never offered',
  );
  t.equal(diskWithSerial(disks, 'WD-22'), nvme, 'the source disk is recognised by its serial');
  t.equal(diskWithSerial(disks, null), null);
  t.equal(diskWithSerial(disks, 'gone'), null);
  t.throws(() => assertWritable(sda!), { message: /mounted filesystems \(\/mnt\/old\)/ });
  t.throws(() => assertWritable(sdb!), UnsafeTargetError);
  t.doesNotThrow(() => assertWritable(nvme!));
  t.ok(confirmsDisk('nvme0n1', nvme!));
  t.ok(confirmsDisk(' /dev/nvme0n1 ', nvme!));
  t.notOk(confirmsDisk('yes', nvme!));
  t.notOk(confirmsDisk('nvme0', nvme!));
});

t.test('malformed lsblk output fails with FormatError', async (t) => {
  t.throws(() => parseLsblk('not json', null), FormatError);
  t.throws(() => parseLsblk('{"other":[]}', null), { message: /no blockdevices list/ });
  t.same(
    parseLsblk('{"blockdevices":[{"type":"disk","size":"x"}]}', null),
    [],
    'a size that is not a number is no disk',
  );
});

t.test('the real lsblk lists an attached loop device', async (t) => {
  const directory = await tempDir(t);
  const image = await makeImageFile(path.join(directory, 'disk.img'), 32 * MiB);
  const loop = await attachLoop(t, image);
  const disks = await listDisks();
  const found = disks.find((disk) => disk.path === loop.device);
  t.ok(found, `${loop.device} is listed`);
  t.equal(found?.size, 32 * MiB);
  t.notOk(offeredDisks(disks).includes(found!), 'loop devices are not offered by default');
  t.ok(offeredDisks(disks, { includeLoop: true }).includes(found!));
  t.same(found?.stacked, [], 'nothing is stacked on it');
  t.equal((await waitForDisk(loop.device, 1000)).path, loop.device);

  // lsblk does not show a loop device over another: the stack walk does.
  const over = await attachLoop(t, loop.device, { offset: MiB, size: 8 * MiB });
  const held = (await listDisks()).find((disk) => disk.path === loop.device)!;
  t.same(
    held.stacked,
    [`${loop.device} → ${path.basename(over.device)} (over ${loop.device}) is a loop device over it`],
    'a loop device over it is listed',
  );
  t.throws(() => assertWritable(held), {
    name: 'UnsafeTargetError',
    message: `${loop.device} is in use: ${loop.device} → ${path.basename(over.device)}`,
  });
  await t.rejects(waitForDisk(path.join(directory, 'nothing'), 600), {
    name: 'NotFoundError',
    message: /did not appear within 1 s/,
  });
});
