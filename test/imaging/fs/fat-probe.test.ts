// Probing FAT volumes: identity (type, UUID, label, sizes) against blkid and fsck.fat,
// detection against other filesystems, and damaged boot sectors failing by name.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { FormatError } from '../../../src/core/errors.js';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { fatFilesystem } from '../../../imaging/fs/fat.js';
import { Prng } from '../../helpers/content.js';
import { attachLoop, makeImageFile, MiB, sfdisk, readAt } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { fsckFat, makeFatImage, mtools, openReader, patch, type MkfsOptions } from './fat-fixtures.js';
import { blkid } from '../../helpers/blkid.js';

const sectorsTotal = (output: string) => Number(/(\d+) sectors total/.exec(output)![1]);

t.test('identity of FAT12, FAT16 and FAT32 volumes matches blkid and fsck.fat', async (t) => {
  const directory = await tempDir(t);
  const cases: (MkfsOptions & { name: string })[] = [
    { name: 'fat12', fatType: 12, size: 4 * MiB, label: 'SMALL12', serial: '1234ABCD' },
    { name: 'fat16', fatType: 16, size: 64 * MiB, label: 'Mixed Case', serial: '0000beef' },
    { name: 'fat16-nolabel', fatType: 16, size: 32 * MiB },
    { name: 'fat32', fatType: 32, size: 300 * MiB, label: 'EFI', serial: 'deadbeef', sectorsPerCluster: 8 },
    { name: 'fat32-4k-sectors', fatType: 32, size: 512 * MiB, label: 'FOURK', sectorSize: 4096 },
  ];
  for (const options of cases) {
    const image = await makeFatImage(path.join(directory, `${options.name}.img`), options);
    const reader = await openReader(t, image);
    t.ok(await fatFilesystem.detect(reader), `${options.name}: detected`);
    const volume = await fatFilesystem.open(reader);
    const expected = await blkid(image);
    const fsck = await fsckFat(image);
    t.ok(fsck.clean, `${options.name}: fsck.fat finds nothing to fix`);
    t.equal(volume.info.type, expected.TYPE, `${options.name}: type as blkid`);
    t.equal(volume.info.uuid, expected.UUID, `${options.name}: UUID as blkid`);
    t.equal(volume.info.label, expected.LABEL ?? null, `${options.name}: label as blkid`);
    t.same(volume.info.features, [expected.VERSION], `${options.name}: FAT type as blkid's VERSION`);
    t.equal(volume.info.blockSize, fsck.clusterSize, `${options.name}: block size is the cluster size`);
    t.equal(
      volume.info.totalBytes,
      sectorsTotal(fsck.output) * (options.sectorSize ?? 512),
      `${options.name}: total bytes from the sector count`,
    );
    t.equal(volume.method, 'used-blocks');
    t.same(volume.warnings, [], `${options.name}: no warnings`);
  }
});

t.test('the label comes from the root directory entry, as blkid reads it', async (t) => {
  const directory = await tempDir(t);
  for (const fatType of [16, 32] as const) {
    const image = await makeFatImage(path.join(directory, `label${fatType}.img`), { fatType, size: 40 * MiB });
    const bootLabelOffset = fatType === 32 ? 0x47 : 0x2b;
    const check = async (what: string, expected: string | null, blkidLabel: string | undefined) => {
      const reader = await openReader(t, image);
      const volume = await fatFilesystem.open(reader);
      t.equal(volume.info.label, expected, `FAT${fatType}, ${what}`);
      t.equal((await blkid(image)).LABEL, blkidLabel, `FAT${fatType}, ${what}: blkid agrees`);
    };
    await patch(image, bootLabelOffset, Buffer.from('BOOTONLY   '));
    await check('label only in the boot sector', null, undefined);
    // mlabel stores labels in upper case, in the root entry and the boot sector.
    await mtools('mlabel', ['-i', image, '::Root Label']);
    await check('label written by mlabel', 'ROOT LABEL', 'ROOT LABEL');
    await patch(image, bootLabelOffset, Buffer.from('OTHER      '));
    await check('different labels: the root entry wins', 'ROOT LABEL', 'ROOT LABEL');
    // Find the label entry and make it "NO NAME": blkid shows that text, we report no label.
    const reader = await openReader(t, image);
    const rootOffset = await rootDirectoryOffset(reader);
    const root = await readAt(image, rootOffset, 4096);
    const at = root.indexOf(Buffer.from('ROOT LABEL '));
    t.ok(at >= 0, 'the label entry is in the first root directory sectors');
    await patch(image, rootOffset + at, Buffer.from('NO NAME    '));
    await check('"NO NAME" in the root entry', null, 'NO NAME');
  }
});

/** Where the root directory starts, from the boot sector. */
async function rootDirectoryOffset(reader: DeviceBlockReader): Promise<number> {
  const sector = await reader.read(0, 512);
  const bytesPerSector = sector.readUInt16LE(11);
  const reserved = sector.readUInt16LE(14);
  const fats = sector[16]!;
  const fat16Size = sector.readUInt16LE(22);
  if (fat16Size) return (reserved + fats * fat16Size) * bytesPerSector;
  const rootCluster = sector.readUInt32LE(44);
  return (reserved + fats * sector.readUInt32LE(36) + (rootCluster - 2) * sector[13]!) * bytesPerSector;
}

t.test('an EFI system partition in a GPT disk, read through its loop partition node', async (t) => {
  const directory = await tempDir(t);
  const image = await makeImageFile(path.join(directory, 'disk.img'), 400 * MiB);
  await sfdisk(
    image,
    'label: gpt\nstart=2048, size=204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system partition"\nsize=100MiB, type=L\n',
  );
  const loop = await attachLoop(t, image);
  const partition = loop.partition(1);
  await execa('mkfs.vfat', ['-F', '32', '-n', 'ESP', partition]);
  await mtools('mmd', ['-i', partition, '::/EFI', '::/EFI/BOOT']);
  const reader = await openReader(t, partition);
  t.equal(reader.size, 100 * MiB);
  const volume = await fatFilesystem.open(reader);
  const expected = await blkid(partition);
  t.equal(volume.info.uuid, expected.UUID);
  t.equal(volume.info.label, 'ESP');
  t.equal(expected.LABEL, 'ESP');
  const tree = await volume.files!();
  const boot = await tree.lookup('/EFI/BOOT');
  t.equal(boot.stat.type, 'directory');
  t.same(await tree.readdir(boot), []);

  // The same bytes through the image file at the partition's offset.
  const viaFile = await openReader(t, image, 2048 * 512, 204800 * 512);
  t.same((await fatFilesystem.open(viaFile)).info, volume.info, 'same identity through the image file window');
  t.notOk(await fatFilesystem.detect(await openReader(t, loop.partition(2))), 'the empty second partition is not FAT');
});

t.test('other filesystems and blank space are not detected as FAT', async (t) => {
  const directory = await tempDir(t);
  const zeros = await makeImageFile(path.join(directory, 'zeros.img'), 16 * MiB);
  t.notOk(await fatFilesystem.detect(await openReader(t, zeros)), 'zeros');
  const ext4 = await makeImageFile(path.join(directory, 'ext4.img'), 32 * MiB);
  await execa('mkfs.ext4', ['-q', '-F', ext4]);
  t.notOk(await fatFilesystem.detect(await openReader(t, ext4)), 'ext4');
  const ntfs = await makeImageFile(path.join(directory, 'ntfs.img'), 32 * MiB);
  await execa('mkntfs', ['-q', '-Q', '-F', ntfs]);
  t.notOk(await fatFilesystem.detect(await openReader(t, ntfs)), 'NTFS (a jump and a BPB, but no FATs)');
  const swap = await makeImageFile(path.join(directory, 'swap.img'), 16 * MiB);
  await execa('mkswap', ['-q', swap]);
  t.notOk(await fatFilesystem.detect(await openReader(t, swap)), 'swap');
  const tiny = await makeImageFile(path.join(directory, 'tiny.img'), 100);
  const tinyReader = await openReader(t, tiny);
  t.notOk(await fatFilesystem.detect(tinyReader), 'a 100-byte volume');
  await t.rejects(fatFilesystem.open(tinyReader), FormatError);
  await t.rejects(fatFilesystem.open(await openReader(t, ntfs)), FormatError, 'opening NTFS as FAT fails cleanly');
});

t.test('damaged boot sectors fail with FormatError naming the problem and its byte', async (t) => {
  const directory = await tempDir(t);
  const fat16 = await makeFatImage(path.join(directory, 'fat16.img'), { fatType: 16, size: 32 * MiB });
  const fat32 = await makeFatImage(path.join(directory, 'fat32.img'), { fatType: 32, size: 64 * MiB });
  const u16 = (value: number) => Buffer.from([value & 0xff, value >> 8]);
  const u32 = (value: number) => {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(value);
    return bytes;
  };
  const damages: { image: string; what: string; offset: number; bytes: Buffer; message: RegExp }[] = [
    {
      image: fat16,
      what: 'jump instruction',
      offset: 0,
      bytes: Buffer.from([0x00]),
      message: /jump instruction is 0x00.*\(byte 0\)/,
    },
    {
      image: fat16,
      what: 'bytes per sector',
      offset: 11,
      bytes: u16(1000),
      message: /bytes per sector is 1000.*\(byte 11\)/,
    },
    {
      image: fat16,
      what: 'bytes per sector too large',
      offset: 11,
      bytes: u16(8192),
      message: /bytes per sector is 8192.*\(byte 11\)/,
    },
    {
      image: fat16,
      what: 'sectors per cluster',
      offset: 13,
      bytes: Buffer.from([3]),
      message: /sectors per cluster is 3.*\(byte 13\)/,
    },
    {
      image: fat16,
      what: 'reserved sectors',
      offset: 14,
      bytes: u16(0),
      message: /reserved sector count is 0.*\(byte 14\)/,
    },
    {
      image: fat16,
      what: 'number of FATs',
      offset: 16,
      bytes: Buffer.from([0]),
      message: /number of FATs is 0.*\(byte 16\)/,
    },
    {
      image: fat16,
      what: 'media byte',
      offset: 21,
      bytes: Buffer.from([0x12]),
      message: /media descriptor is 0x12.*\(byte 21\)/,
    },
    {
      image: fat16,
      what: 'total sectors beyond the volume',
      offset: 32,
      bytes: u32(0x00ffffff),
      message: /claims 16777215 sectors.*holds only 33554432 bytes \(byte 32\)/,
    },
    {
      image: fat16,
      what: 'FAT too small',
      offset: 22,
      bytes: u16(4),
      message: /FAT of 4 sectors holds 1024 entries, too few.*\(byte 22\)/,
    },
    {
      image: fat16,
      what: 'FATs beyond the end',
      offset: 22,
      bytes: u16(60000),
      message: /2 FATs of 60000 sectors.*beyond the 65536 sectors.*\(byte 22\)/,
    },
    {
      image: fat16,
      what: 'no root directory entries',
      offset: 17,
      bytes: u16(0),
      message: /no root directory entries \(byte 17\)/,
    },
    {
      image: fat32,
      what: 'FAT32 root cluster',
      offset: 44,
      bytes: u32(0),
      message: /root directory cluster is 0.*\(byte 44\)/,
    },
    {
      image: fat32,
      what: 'FAT32 version',
      offset: 42,
      bytes: u16(0x0100),
      message: /FAT32 version is 1\.0.*\(byte 42\)/,
    },
    {
      image: fat32,
      what: 'FSInfo outside reserved sectors',
      offset: 48,
      bytes: u16(200),
      message: /FSInfo sector is 200.*\(byte 48\)/,
    },
    {
      image: fat32,
      what: 'backup boot sector outside reserved sectors',
      offset: 50,
      bytes: u16(100),
      message: /backup boot sector is 100.*\(byte 50\)/,
    },
    {
      image: fat32,
      what: 'active FAT that does not exist',
      offset: 40,
      bytes: u16(0x0083),
      message: /active FAT is number 3.*\(byte 40\)/,
    },
    {
      image: fat32,
      what: 'root entries on FAT32',
      offset: 17,
      bytes: u16(512),
      message: /FAT32 volume declares 512 fixed root.*\(byte 17\)/,
    },
    { image: fat32, what: 'FAT size zero', offset: 36, bytes: u32(0), message: /sectors per FAT is 0.*\(byte 36\)/ },
  ];
  for (const damage of damages) {
    const copy = path.join(directory, 'damaged.img');
    await fs.copyFile(damage.image, copy);
    await patch(copy, damage.offset, damage.bytes);
    const { reader, close } = await DeviceBlockReader.open(copy);
    try {
      await t.rejects(fatFilesystem.open(reader), { name: 'FormatError', message: damage.message }, damage.what);
      await fatFilesystem
        .open(reader)
        .catch((error: Error) => t.match(error.message, copy, `${damage.what}: the message names the volume`));
    } finally {
      await close();
    }
  }

  // The volume is shorter than the filesystem says (a truncated image or partition).
  const truncated = await openReader(t, fat16, 0, 16 * MiB);
  await t.rejects(
    fatFilesystem.open(truncated),
    /claims 65536 sectors \(33554432 bytes\) but the volume holds only 16777216 bytes \(byte 32\)/,
  );
});

t.test('warnings: dirty volume, bad FSInfo, FAT32 with few clusters', async (t) => {
  const directory = await tempDir(t);
  const fat16 = await makeFatImage(path.join(directory, 'dirty16.img'), { fatType: 16, size: 32 * MiB });
  const reserved = (await readAt(fat16, 14, 2)).readUInt16LE(0);
  const entry1 = reserved * 512 + 2;
  const flags = (await readAt(fat16, entry1, 2)).readUInt16LE(0);
  await patch(fat16, entry1, Buffer.from([flags & 0xff, (flags >> 8) & 0x7f]));
  t.match((await fatFilesystem.open(await openReader(t, fat16))).warnings, [/not cleanly unmounted/]);
  t.not((await fsckFat(fat16)).clean, true, 'fsck.fat also sees the dirty flag');

  const small32 = await makeFatImage(path.join(directory, 'small32.img'), { fatType: 32, size: 20 * MiB });
  await patch(small32, 512 + 484, Buffer.from('XXXX'));
  const volume = await fatFilesystem.open(await openReader(t, small32));
  t.match(volume.warnings, [/FAT32 volume with only \d+ clusters/, /FSInfo sector at byte 512 has wrong signatures/]);
  t.equal(volume.info.features![0], 'FAT32', 'still read as FAT32');
});

t.test('random damage to the boot sector never fails with anything but FormatError', async (t) => {
  const directory = await tempDir(t);
  const images = [
    await makeFatImage(path.join(directory, 'f12.img'), { fatType: 12, size: 4 * MiB }),
    await makeFatImage(path.join(directory, 'f32.img'), { fatType: 32, size: 40 * MiB }),
  ];
  const prng = new Prng(77);
  let opened = 0;
  let refused = 0;
  for (const image of images) {
    const original = await readAt(image, 0, 512);
    for (let round = 0; round < 300; round++) {
      const sector = Buffer.from(original);
      const flips = 1 + (prng.next() % 4);
      for (let flip = 0; flip < flips; flip++) sector[11 + (prng.next() % 80)] = prng.next() & 0xff;
      await patch(image, 0, sector);
      const { reader, close } = await DeviceBlockReader.open(image);
      try {
        const volume = await fatFilesystem.open(reader);
        await volume.usedRanges();
        opened++;
      } catch (error) {
        if (!(error instanceof FormatError)) {
          t.fail(`round ${round}: ${String(error)}`);
          return;
        }
        refused++;
      } finally {
        await close();
      }
    }
    await patch(image, 0, original);
  }
  t.ok(opened > 0 && refused > 0, `both outcomes happen (${opened} opened, ${refused} refused)`);
});
