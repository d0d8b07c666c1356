// The block device stack read from sysfs, on trees laid out as the kernel lays them
// out (this kernel has no dm or md, so LVM, LUKS, md, bcache and zram stacks are built
// as directories with the same files): which chains keep a disk busy, and which disks
// a root filesystem lives on.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { holdsRunningSystem, stackedUses } from '../../imaging/restore/safety.js';
import { BlockStack, devnoOf, type SystemView } from '../../imaging/stack.js';
import { tempDir } from '../helpers/tmp.js';

interface FakeDevice {
  name: string;
  devno: string;
  /** The whole disk of a partition. */
  disk?: string;
  holders?: string[];
  slaves?: string[];
  dm?: { name: string; uuid: string };
  md?: { level: string; state: string };
  loopBackingFile?: string;
  zramBackingDev?: string;
}

/**
 * Lay out a sysfs tree: block/DISK[/PART] directories, class/block/NAME and
 * dev/block/MAJOR:MINOR symlinks to them, holders/ and slaves/ entries as symlinks.
 */
async function fakeSysfs(root: string, devices: FakeDevice[]): Promise<void> {
  const where = new Map(
    devices.map((device) => [
      device.name,
      device.disk ? path.join('block', device.disk, device.name) : path.join('block', device.name),
    ]),
  );
  for (const device of devices) {
    const directory = path.join(root, where.get(device.name)!);
    await fs.mkdir(path.join(directory, 'holders'), { recursive: true });
    await fs.mkdir(path.join(directory, 'slaves'), { recursive: true });
    await fs.writeFile(path.join(directory, 'dev'), `${device.devno}\n`);
    if (device.disk) await fs.writeFile(path.join(directory, 'partition'), '1\n');
    for (const holder of device.holders ?? [])
      await fs.symlink(path.join(root, where.get(holder)!), path.join(directory, 'holders', holder));
    for (const slave of device.slaves ?? [])
      await fs.symlink(path.join(root, where.get(slave)!), path.join(directory, 'slaves', slave));
    if (device.dm) {
      await fs.mkdir(path.join(directory, 'dm'));
      await fs.writeFile(path.join(directory, 'dm', 'name'), `${device.dm.name}\n`);
      await fs.writeFile(path.join(directory, 'dm', 'uuid'), `${device.dm.uuid}\n`);
    }
    if (device.md) {
      await fs.mkdir(path.join(directory, 'md'));
      await fs.writeFile(path.join(directory, 'md', 'level'), `${device.md.level}\n`);
      await fs.writeFile(path.join(directory, 'md', 'array_state'), `${device.md.state}\n`);
    }
    if (device.loopBackingFile) {
      await fs.mkdir(path.join(directory, 'loop'));
      await fs.writeFile(path.join(directory, 'loop', 'backing_file'), `${device.loopBackingFile}\n`);
    }
    if (device.zramBackingDev) await fs.writeFile(path.join(directory, 'backing_dev'), `${device.zramBackingDev}\n`);
    await fs.mkdir(path.join(root, 'class', 'block'), { recursive: true });
    await fs.mkdir(path.join(root, 'dev', 'block'), { recursive: true });
    await fs.symlink(path.join('..', '..', where.get(device.name)!), path.join(root, 'class', 'block', device.name));
    await fs.symlink(path.join('..', '..', where.get(device.name)!), path.join(root, 'dev', 'block', device.devno));
  }
}

t.test('chains that keep a disk busy, named from the disk up', async (t) => {
  const root = await tempDir(t, 'b365-sysfs-');
  // A file that sdh1's filesystem holds, as far as this tree says: its st_dev is sdh1's number.
  const backingFile = path.join(root, 'inner.img');
  await fs.writeFile(backingFile, 'x');
  const fileDevno = devnoOf((await fs.stat(backingFile)).dev);
  await fakeSysfs(path.join(root, 'sys'), [
    // Root on LVM on LUKS on sdb2.
    { name: 'sdb', devno: '8:16' },
    { name: 'sdb1', devno: '8:17', disk: 'sdb' },
    { name: 'sdb2', devno: '8:18', disk: 'sdb', holders: ['dm-0'] },
    {
      name: 'dm-0',
      devno: '253:0',
      slaves: ['sdb2'],
      holders: ['dm-1', 'dm-4'],
      dm: { name: 'luks-5e1f', uuid: 'CRYPT-LUKS2-5e1f00aa-luks-5e1f' },
    },
    { name: 'dm-1', devno: '253:1', slaves: ['dm-0'], dm: { name: 'vg0-root', uuid: 'LVM-AbCdEfGhIjKlMnOp' } },
    { name: 'dm-4', devno: '253:4', slaves: ['dm-0'], dm: { name: 'vg0-swap', uuid: 'LVM-AbCdEfGhIjKlSwAp' } },
    // A RAID 1 of sdc and sdd, assembled, not mounted.
    { name: 'sdc', devno: '8:32', holders: ['md0'] },
    { name: 'sdd', devno: '8:48', holders: ['md0'] },
    { name: 'md0', devno: '9:0', slaves: ['sdc', 'sdd'], md: { level: 'raid1', state: 'clean' } },
    // An active LV on a whole-disk PV, not mounted; an open LUKS mapping; a bcache device.
    { name: 'sde', devno: '8:64', holders: ['dm-2'] },
    { name: 'dm-2', devno: '253:2', slaves: ['sde'], dm: { name: 'data-archive', uuid: 'LVM-QrStUvWxYz012345' } },
    { name: 'sdf', devno: '8:80' },
    { name: 'sdf1', devno: '8:81', disk: 'sdf', holders: ['dm-3'] },
    { name: 'dm-3', devno: '253:3', slaves: ['sdf1'], dm: { name: 'secret', uuid: 'CRYPT-LUKS2-77aa-secret' } },
    { name: 'sdg', devno: '8:96', holders: ['bcache0'] },
    { name: 'bcache0', devno: '252:0', slaves: ['sdg'] },
    // zram writing back to a partition; a loop over a file on a partition's filesystem.
    { name: 'sdj', devno: '8:144' },
    { name: 'sdj1', devno: '8:145', disk: 'sdj' },
    { name: 'zram0', devno: '251:0', zramBackingDev: '/dev/sdj1' },
    { name: 'sdh', devno: '8:112' },
    { name: 'sdh1', devno: fileDevno, disk: 'sdh' },
    { name: 'loop7', devno: '7:7', loopBackingFile: backingFile },
    // A free disk with an unused partition.
    { name: 'sdi', devno: '8:128' },
    { name: 'sdi1', devno: '8:129', disk: 'sdi' },
  ]);
  const view: SystemView = {
    sysfs: path.join(root, 'sys'),
    mounts: [
      { devno: '253:1', mountPoint: '/' },
      { devno: '8:17', mountPoint: '/boot' },
    ],
    swaps: ['/dev/dm-4'],
  };
  const stack = new BlockStack(view);
  const uses = async (name: string) => stackedUses(stack, `/dev/${name}`, name);

  t.same(
    await uses('sdb'),
    [
      '/dev/sdb → sdb1 mounted at /boot',
      '/dev/sdb → sdb2 → dm-0 (luks-5e1f) → dm-1 (vg0-root) mounted at /',
      '/dev/sdb → sdb2 → dm-0 (luks-5e1f) → dm-4 (vg0-swap) in use as swap',
    ],
    'root on LVM on LUKS, swap beside it, /boot on a partition',
  );
  t.same(
    await uses('sdb2'),
    [
      '/dev/sdb2 → dm-0 (luks-5e1f) → dm-1 (vg0-root) mounted at /',
      '/dev/sdb2 → dm-0 (luks-5e1f) → dm-4 (vg0-swap) in use as swap',
    ],
    'a partition as the target',
  );
  t.same(await uses('sdc'), ['/dev/sdc → md0 (raid1, clean) is an assembled md array'], 'an assembled array member');
  t.same(await uses('sdd'), ['/dev/sdd → md0 (raid1, clean) is an assembled md array']);
  t.same(
    await uses('sde'),
    ['/dev/sde → dm-2 (data-archive) is an active LVM logical volume'],
    'an active LV, not mounted',
  );
  t.same(
    await uses('sdf'),
    ['/dev/sdf → sdf1 → dm-3 (secret) is an open dm-crypt/LUKS mapping'],
    'an open crypt mapping',
  );
  t.same(await uses('sdg'), ['/dev/sdg → bcache0 is a bcache device over it']);
  t.same(await uses('sdj'), ['/dev/sdj → sdj1 → zram0 is a zram device writing back to it']);
  t.same(
    await uses('sdh'),
    [`/dev/sdh → sdh1 → loop7 (over ${backingFile}) is a loop device over it`],
    'a loop device over a file on its filesystem',
  );
  t.same(await uses('sdi'), [], 'a free disk with an unused partition is not busy');
  t.same(await uses('md0'), [], 'an array nothing is stacked on');

  t.equal(await holdsRunningSystem(stack, 'sdb', view.mounts), true, 'a root on LVM on LUKS on sdb2 lives on sdb');
  t.equal(await holdsRunningSystem(stack, 'sdb2', view.mounts), true);
  t.equal(await holdsRunningSystem(stack, 'dm-0', view.mounts), true);
  t.equal(await holdsRunningSystem(stack, 'sdc', view.mounts), false);
  t.equal(await holdsRunningSystem(stack, 'sdi', view.mounts), false);
});

t.test('a root on an md array marks every member disk as the system disk', async (t) => {
  const root = await tempDir(t, 'b365-sysfs-');
  await fakeSysfs(root, [
    { name: 'sda', devno: '8:0' },
    { name: 'sda1', devno: '8:1', disk: 'sda', holders: ['md127'] },
    { name: 'sdb', devno: '8:16' },
    { name: 'sdb1', devno: '8:17', disk: 'sdb', holders: ['md127'] },
    { name: 'md127', devno: '9:127', slaves: ['sda1', 'sdb1'], md: { level: 'raid1', state: 'active' } },
    { name: 'sdc', devno: '8:32' },
  ]);
  const view: SystemView = { sysfs: root, mounts: [{ devno: '9:127', mountPoint: '/' }], swaps: [] };
  const stack = new BlockStack(view);
  t.equal(await holdsRunningSystem(stack, 'sda', view.mounts), true);
  t.equal(await holdsRunningSystem(stack, 'sdb', view.mounts), true);
  t.equal(await holdsRunningSystem(stack, 'sdc', view.mounts), false);
  t.same(await stackedUses(stack, '/dev/sda', 'sda'), ['/dev/sda → sda1 → md127 (raid1, active) mounted at /']);
});
