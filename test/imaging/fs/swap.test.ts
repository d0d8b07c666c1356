// Linux swap: the header page against mkswap and blkid, damaged headers, signatures that
// are not plain swap (hibernation), and re-creating the same swap area with mkswap.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { FormatError, UsageError } from '../../../src/core/errors.js';
import { swapFilesystem, swapRecreateArgs } from '../../../imaging/fs/swap.js';
import { attachLoop, makeImageFile, MiB, sfdisk, readAt } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { makeFatImage, openReader, patch } from './fat-fixtures.js';
import { blkid } from '../../helpers/blkid.js';

async function mkswap(target: string, args: string[], sizeKiB?: number): Promise<void> {
  await execa('mkswap', ['-q', ...args, target, ...(sizeKiB === undefined ? [] : [String(sizeKiB)])]);
}

t.test('swap areas made by mkswap read as blkid reports them', async (t) => {
  const directory = await tempDir(t);
  const cases = [
    { name: '4k', pageSize: 4096, uuid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', label: 'swap-one', sizeKiB: undefined },
    // 15 bytes: mkswap keeps the last of the 16 for the terminating NUL.
    {
      name: '16k',
      pageSize: 16384,
      uuid: 'c0ffee00-1234-4abc-8def-001122334455',
      label: 'fifteen-chars-l',
      sizeKiB: undefined,
    },
    { name: '64k', pageSize: 65536, uuid: '11111111-2222-4333-8444-555555555555', label: 'swäp', sizeKiB: undefined },
    { name: 'nolabel', pageSize: 4096, uuid: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee', label: null, sizeKiB: undefined },
    {
      name: 'smaller-than-volume',
      pageSize: 4096,
      uuid: '12345678-9abc-4def-8123-456789abcdef',
      label: 'half',
      sizeKiB: 32 * 1024,
    },
  ];
  for (const swap of cases) {
    const image = await makeImageFile(path.join(directory, `${swap.name}.img`), 64 * MiB);
    await mkswap(
      image,
      ['-p', String(swap.pageSize), '-U', swap.uuid, ...(swap.label ? ['-L', swap.label] : [])],
      swap.sizeKiB,
    );
    const reader = await openReader(t, image);
    t.ok(await swapFilesystem.detect(reader), `${swap.name}: detected`);
    const volume = await swapFilesystem.open(reader);
    const expected = await blkid(image);
    t.equal(expected.TYPE, 'swap');
    t.equal(volume.info.type, 'swap');
    t.equal(volume.info.uuid, expected.UUID, `${swap.name}: UUID as blkid`);
    t.equal(volume.info.uuid, swap.uuid);
    t.equal(volume.info.label, expected.LABEL ?? null, `${swap.name}: label as blkid`);
    t.equal(volume.info.label, swap.label);
    t.equal(volume.info.blockSize, swap.pageSize, `${swap.name}: block size is the page size`);
    t.equal(
      volume.info.totalBytes,
      swap.sizeKiB ? swap.sizeKiB * 1024 : 64 * MiB,
      `${swap.name}: total bytes from last_page`,
    );
    t.equal(volume.info.usedBytes, swap.pageSize);
    t.same(volume.info.features, [`version ${expected.VERSION}`]);
    t.equal(volume.method, 'swap-header-only');
    t.same((await volume.usedRanges()).ranges, [[0, swap.pageSize]], `${swap.name}: only the header page is used`);
    t.same(volume.warnings, []);
  }
});

t.test('old SWAP-SPACE, big-endian headers and untrusted padding', async (t) => {
  const directory = await tempDir(t);
  const old = await makeImageFile(path.join(directory, 'old.img'), 1 * MiB);
  await patch(old, 4086, Buffer.from('SWAP-SPACE'));
  t.match(await blkid(old), { TYPE: 'swap', VERSION: '0' }, 'blkid calls it swap version 0');
  const oldVolume = await swapFilesystem.open(await openReader(t, old));
  t.match(oldVolume.info, {
    type: 'swap',
    uuid: null,
    label: null,
    blockSize: 4096,
    totalBytes: 1 * MiB,
    usedBytes: 4096,
  });
  t.match(oldVolume.warnings, [/version 0/]);

  // A header written by a big-endian machine: the version, size and count fields swapped.
  const bigEndian = await makeImageFile(path.join(directory, 'be.img'), 16 * MiB);
  await mkswap(bigEndian, ['-U', '01234567-89ab-4cde-8f01-23456789abcd', '-L', 'be']);
  const header = await readAt(bigEndian, 1024, 12);
  const swapped = Buffer.alloc(12);
  for (let field = 0; field < 3; field++) swapped.writeUInt32BE(header.readUInt32LE(field * 4), field * 4);
  await patch(bigEndian, 1024, swapped);
  const expected = await blkid(bigEndian);
  const volume = await swapFilesystem.open(await openReader(t, bigEndian));
  t.equal(volume.info.uuid, expected.UUID);
  t.equal(volume.info.label, expected.LABEL);
  t.equal(volume.info.totalBytes, 16 * MiB);
  t.same(volume.info.features, ['big-endian', 'version 1']);

  // blkid ignores UUID and label when the padding after them holds data.
  const dirty = await makeImageFile(path.join(directory, 'dirty.img'), 16 * MiB);
  await mkswap(dirty, ['-U', '01234567-89ab-4cde-8f01-23456789abcd', '-L', 'dirty']);
  await patch(dirty, 1196, Buffer.from([1, 2, 3, 4]));
  const dirtyExpected = await blkid(dirty);
  const dirtyVolume = await swapFilesystem.open(await openReader(t, dirty));
  t.equal(dirtyExpected.UUID, undefined);
  t.equal(dirtyVolume.info.uuid, null);
  t.equal(dirtyVolume.info.label, null);
  t.match(dirtyVolume.warnings, [/padding holds data/]);
});

t.test('hibernation images, other filesystems and blank space are not swap', async (t) => {
  const directory = await tempDir(t);
  const hibernated = await makeImageFile(path.join(directory, 'hibernated.img'), 16 * MiB);
  await mkswap(hibernated, ['-L', 'resume']);
  await patch(hibernated, 4086, Buffer.from('S1SUSPEND\0'));
  t.equal((await blkid(hibernated)).TYPE, 'swsuspend', 'blkid sees a hibernation image');
  const hibernatedReader = await openReader(t, hibernated);
  t.notOk(
    await swapFilesystem.detect(hibernatedReader),
    'a swap holding a hibernation image is not detected (it must be imaged whole)',
  );
  await t.rejects(swapFilesystem.open(hibernatedReader), FormatError);

  const tuxOnIce = await makeImageFile(path.join(directory, 'toi.img'), 16 * MiB);
  await mkswap(tuxOnIce, []);
  await patch(tuxOnIce, 0, Buffer.from('edc302e99856e50c', 'hex'));
  t.notOk(await swapFilesystem.detect(await openReader(t, tuxOnIce)), 'TuxOnIce');
  await t.rejects(swapFilesystem.open(await openReader(t, tuxOnIce)), /TuxOnIce hibernation image/);

  const zeros = await makeImageFile(path.join(directory, 'zeros.img'), 16 * MiB);
  t.notOk(await swapFilesystem.detect(await openReader(t, zeros)), 'zeros');
  await t.rejects(swapFilesystem.open(await openReader(t, zeros)), /no SWAPSPACE2 or SWAP-SPACE signature/);
  const fat = await makeFatImage(path.join(directory, 'fat.img'), { fatType: 16, size: 16 * MiB });
  t.notOk(await swapFilesystem.detect(await openReader(t, fat)), 'FAT');
  const tiny = await makeImageFile(path.join(directory, 'tiny.img'), 1000);
  t.notOk(await swapFilesystem.detect(await openReader(t, tiny)), 'a 1000-byte volume');
  await t.rejects(swapFilesystem.open(await openReader(t, tiny)), FormatError);
});

t.test('damaged swap headers fail with FormatError naming the field', async (t) => {
  const directory = await tempDir(t);
  const pristine = await makeImageFile(path.join(directory, 'swap.img'), 16 * MiB);
  await mkswap(pristine, ['-L', 'damaged']);
  const u32 = (value: number) => {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(value);
    return bytes;
  };
  const damages = [
    { what: 'version', offset: 1024, bytes: u32(2), message: /version is 2, not 1 \(byte 1024\)/ },
    { what: 'last page zero', offset: 1028, bytes: u32(0), message: /last page is 0 \(byte 1028\)/ },
    {
      what: 'last page beyond the volume',
      offset: 1028,
      bytes: u32(100_000),
      message: /last page 100000 ends at byte 409604096, beyond the 16777216-byte volume \(byte 1028\)/,
    },
    {
      what: 'too many bad pages',
      offset: 1032,
      bytes: u32(5000),
      message: /5000 bad pages listed, at most 637 fit in the header \(byte 1032\)/,
    },
  ];
  for (const damage of damages) {
    const copy = path.join(directory, 'damaged.img');
    await fs.copyFile(pristine, copy);
    await patch(copy, damage.offset, damage.bytes);
    const reader = await openReader(t, copy);
    t.ok(await swapFilesystem.detect(reader), `${damage.what}: the signature is still there`);
    await t.rejects(swapFilesystem.open(reader), { name: 'FormatError', message: damage.message }, damage.what);
  }
  const fewBad = path.join(directory, 'bad-pages.img');
  await fs.copyFile(pristine, fewBad);
  await patch(fewBad, 1032, u32(3));
  t.match((await swapFilesystem.open(await openReader(t, fewBad))).warnings, [/lists 3 bad pages/]);
});

t.test('swapRecreateArgs re-creates the same UUID, label, page size and size on a blank partition', async (t) => {
  const directory = await tempDir(t);
  const image = await makeImageFile(path.join(directory, 'disk.img'), 200 * MiB);
  await sfdisk(image, 'label: gpt\nsize=64MiB, type=S\nsize=64MiB, type=S\nsize=64MiB, type=S\n');
  const loop = await attachLoop(t, image);
  const cases = [
    {
      original: loop.partition(1),
      args: ['-p', '16384', '-U', '9b2f4c1e-7d3a-4e5f-8a6b-1c2d3e4f5a6b', '-L', 'cache swap'],
      sizeKiB: undefined,
    },
    // A swap area that does not fill its partition keeps its size.
    { original: loop.partition(3), args: ['-U', '5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b'], sizeKiB: 40 * 1024 },
  ];
  for (const swap of cases) {
    await mkswap(swap.original, swap.args, swap.sizeKiB);
    const original = await swapFilesystem.open(await openReader(t, swap.original));
    const blank = loop.partition(2);
    await execa('dd', ['if=/dev/zero', `of=${blank}`, 'bs=1M', 'count=1', 'conv=fsync', 'status=none']);
    const args = swapRecreateArgs(original.info, blank);
    t.equal(args.at(-2), blank, 'the device comes before the size');
    await execa('mkswap', ['-q', ...args]);
    const expected = await blkid(swap.original);
    const recreated = await blkid(blank);
    t.equal(recreated.UUID, expected.UUID, `${swap.original}: same UUID from blkid`);
    t.equal(recreated.LABEL, expected.LABEL, `${swap.original}: same LABEL from blkid`);
    const again = await swapFilesystem.open(await openReader(t, blank));
    t.same(again.info, original.info, `${swap.original}: same identity, page size and size`);
    const pageSize = original.info.blockSize;
    t.ok(
      (await readAt(blank, 0, pageSize)).equals(await readAt(swap.original, 0, pageSize)),
      'the header pages are byte for byte the same',
    );
  }
  const withoutDevice = swapRecreateArgs({
    type: 'swap',
    uuid: null,
    label: null,
    blockSize: 4096,
    totalBytes: 4 * MiB,
    usedBytes: 4096,
  });
  t.same(withoutDevice, ['--pagesize', '4096'], 'options only, and no UUID or label to keep');
  t.throws(
    () =>
      swapRecreateArgs({
        type: 'vfat',
        uuid: null,
        label: null,
        blockSize: 4096,
        totalBytes: 4 * MiB,
        usedBytes: 4096,
      }),
    UsageError,
  );
});
