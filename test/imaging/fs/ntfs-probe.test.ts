// Probing NTFS volumes: what the module reports (serial, label, cluster size, sizes,
// version) against blkid and ntfsinfo, on image files, on a partition of a loop device
// and through an offset window; and FormatErrors that name the byte of a damaged boot
// sector or $MFT record 0.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { ntfsFilesystem } from '../../../imaging/fs/ntfs.js';
import { RangeList } from '../../../imaging/ranges.js';
import { attachLoop, makeImageFile, MiB, mount, run, sfdisk } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  makeNtfsImage,
  ntfsfixCheck,
  ntfsinfoVolume,
  openNtfs,
  partcloneUsedRanges,
  withNtfsMount,
} from './ntfs-helpers.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';
import { copyRanges } from '../../helpers/ranges.js';
import { blkid } from '../../helpers/blkid.js';

const volumes = [
  {
    name: 'default 4 KiB clusters with a label',
    size: 256 * MiB,
    args: ['--label', 'Données 2026'],
    label: 'Données 2026',
  },
  { name: 'no label', size: 64 * MiB, args: [], label: null },
  { name: '512-byte clusters', size: 64 * MiB, args: ['--cluster-size', '512', '--label', 'small'], label: 'small' },
  { name: '64 KiB clusters', size: 512 * MiB, args: ['--cluster-size', '65536'], label: null },
  // Above 64 KiB the boot sector stores sectors per cluster as a negative power of two.
  { name: '128 KiB clusters', size: 512 * MiB, args: ['--cluster-size', '131072'], label: null },
  {
    name: '2 MiB clusters',
    size: 1024 * MiB,
    args: ['--cluster-size', '2097152', '--label', 'huge clusters'],
    label: 'huge clusters',
  },
  { name: '4096-byte sectors', size: 128 * MiB, args: ['--sector-size', '4096'], label: null },
];

for (const volume of volumes) {
  t.test(`probe: ${volume.name}`, async (t) => {
    const directory = await tempDir(t);
    const image = await makeNtfsImage(path.join(directory, 'volume.img'), volume.size, volume.args);
    const { reader, close } = await DeviceBlockReader.open(image);
    t.teardown(close);
    t.equal(await ntfsFilesystem.detect(reader), true, 'detected');
    const opened = await ntfsFilesystem.open(reader);
    const expected = await blkid(image);
    const ntfsinfo = await ntfsinfoVolume(image);
    t.equal(opened.info.type, 'ntfs');
    t.equal(opened.method, 'used-blocks');
    t.equal(opened.info.uuid, expected.UUID, 'the serial number as blkid prints it');
    t.match(opened.info.uuid, /^[0-9A-F]{16}$/);
    t.equal(opened.info.label, expected.LABEL ?? null, 'label as blkid reads it');
    t.equal(opened.info.label, volume.label);
    t.equal(opened.info.blockSize, ntfsinfo.clusterSize, 'cluster size as ntfsinfo says');
    t.equal(opened.info.totalBytes, ntfsinfo.clusterCount * ntfsinfo.clusterSize);
    t.equal(opened.info.usedBytes, (ntfsinfo.clusterCount - ntfsinfo.freeClusters) * ntfsinfo.clusterSize);
    t.same(opened.info.features, [`ntfs-${ntfsinfo.version}`]);
    t.same(opened.warnings, []);

    const used = await opened.usedRanges();
    const sectorSize = volume.args.includes('--sector-size') ? 4096 : 512;
    const partclone = await partcloneUsedRanges(image, directory);
    t.same(
      used.ranges,
      RangeList.of([...partclone.ranges, [volume.size - sectorSize, volume.size]]).ranges,
      'used ranges: partclone.ntfs and the backup boot sector',
    );
    const copy = path.join(directory, 'copy.img');
    await copyRanges(image, copy, used);
    const check = await ntfsfixCheck(copy);
    t.equal(check.exitCode, 0, 'a copy of the used ranges passes ntfsfix -n', { output: check.output });
  });
}

t.test('a partition on a loop device, and the same volume through an offset window', async (t) => {
  const directory = await tempDir(t);
  const image = await makeImageFile(path.join(directory, 'disk.img'), 200 * MiB);
  await sfdisk(image, 'label: gpt\nstart=2048, size=300000, type=EBD0A0A2-B9E5-4433-87C0-68B9B6A7E3C7\n');
  const loop = await attachLoop(t, image);
  const partition = loop.partition(1);
  await run('mkntfs', ['--quick', '--force', '--label', 'Partition', partition]);
  const mounted = await mount(t, partition, { type: 'ntfs-3g' });
  await fs.writeFile(path.join(mounted.path, 'hello.txt'), 'hello from a partition\n');
  await mounted.unmount();

  const expected = await blkid(partition);
  for (const [what, source] of [
    ['partition device', await openNtfs(t, partition)],
    ['window of the image file', await openNtfs(t, image, 2048 * 512, 300000 * 512)],
  ] as const) {
    t.equal(source.volume.info.uuid, expected.UUID, `${what}: serial`);
    t.equal(source.volume.info.label, 'Partition', `${what}: label`);
    const file = await source.tree.lookup('/hello.txt');
    t.equal((await source.tree.read(file, 0, 1000)).toString(), 'hello from a partition\n', `${what}: file contents`);
  }
});

t.test('detect', async (t) => {
  const directory = await tempDir(t);
  const zeros = await makeImageFile(path.join(directory, 'zeros.img'), 4 * MiB);
  const ext4 = await makeImageFile(path.join(directory, 'ext4.img'), 16 * MiB);
  await run('mkfs.ext4', ['-q', '-F', ext4]);
  const fat = await makeImageFile(path.join(directory, 'fat.img'), 16 * MiB);
  await run('mkfs.fat', [fat]);
  for (const file of [zeros, ext4, fat]) {
    const { reader, close } = await DeviceBlockReader.open(file);
    t.equal(await ntfsFilesystem.detect(reader), false, `${path.basename(file)} is not NTFS`);
    await close();
  }
  t.equal(
    await ntfsFilesystem.detect(new MemoryBlockReader(Buffer.alloc(100), 'tiny')),
    false,
    'a volume smaller than a sector',
  );
  await t.rejects(ntfsFilesystem.open(new MemoryBlockReader(Buffer.alloc(100), 'tiny')), {
    name: 'FormatError',
    message: /tiny/,
  });
});

/** Little-endian writes into a copy of the volume. */
function patched(original: Buffer, edits: Array<[offset: number, bytes: number[]]>): MemoryBlockReader {
  const copy = Buffer.from(original);
  for (const [offset, bytes] of edits) Buffer.from(bytes).copy(copy, offset);
  return new MemoryBlockReader(copy, 'damaged.img');
}

t.test('a damaged boot sector or $MFT record 0 is a FormatError naming the byte', async (t) => {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'volume.img'), 32 * MiB);
  const original = await fs.readFile(image);
  const clusterSize = original.readUInt16LE(11) * original[13]!;
  const mft = Number(original.readBigInt64LE(48)) * clusterSize;
  // Offsets inside record 0: its $DATA attribute's mapping pairs.
  let attribute = mft + original.readUInt16LE(mft + 20);
  while (original.readUInt32LE(attribute) !== 0x80) attribute += original.readUInt32LE(attribute + 4);
  const mappingPairs = attribute + original.readUInt16LE(attribute + 32);

  const cases: Array<{ what: string; edits: Array<[number, number[]]>; message: RegExp }> = [
    { what: 'OEM id', edits: [[3, [0x4e, 0x54, 0x46, 0x53, 0x21]]], message: /boot sector at byte 3: OEM id/ },
    { what: 'end-of-sector marker', edits: [[510, [0, 0]]], message: /boot sector at byte 510: end-of-sector marker/ },
    {
      what: 'bytes per sector',
      edits: [[11, [0x00, 0x03]]],
      message: /boot sector at byte 11: bytes per sector is 768/,
    },
    { what: 'sectors per cluster', edits: [[13, [3]]], message: /boot sector at byte 13: sectors per cluster is 3/ },
    {
      what: 'cluster size above 2 MiB',
      edits: [[13, [0xe0]]],
      message: /boot sector at byte 13: cluster size \d+ is above/,
    },
    {
      what: 'number of sectors',
      edits: [[40, [0, 0, 0, 0, 0, 1, 0, 0]]],
      message: /boot sector at byte 40: the volume is \d+ sectors/,
    },
    {
      what: '$MFT cluster',
      edits: [[48, [0, 0, 0, 0x10, 0, 0, 0, 0]]],
      message: /boot sector at byte 48: \$MFT cluster \d+ is outside/,
    },
    { what: 'MFT record size', edits: [[64, [0]]], message: /boot sector at byte 64: MFT record size 0/ },
    { what: 'index block size', edits: [[68, [0x70]]], message: /boot sector at byte 68: index block size/ },
    {
      what: 'record 0 magic',
      edits: [[mft, [0x46, 0x49, 0x4c, 0x45 ^ 0x20]]],
      message: new RegExp(`MFT record 0 at byte ${mft}: magic is "FILe"`),
    },
    {
      what: 'record 0 fixup',
      edits: [[mft + 1022, [0x12, 0x34]]],
      message: new RegExp(`MFT record 0 at byte ${mft + 1022}: update sequence mismatch at the end of sector 1`),
    },
    {
      what: 'record 0 bytes in use',
      edits: [[mft + 24, [0, 0x10, 0, 0]]],
      message: new RegExp(`MFT record 0 at byte ${mft + 24}: bytes in use 4096`),
    },
    {
      what: 'record 0 runlist',
      edits: [[mappingPairs, [0x0f]]],
      message: new RegExp(`MFT record 0 at byte ${mappingPairs}: runlist header byte 0xf`),
    },
    {
      what: 'record 0 runlist outside the volume',
      edits: [[mappingPairs, [0x41, 0x01, 0, 0, 0, 0x40]]],
      message: new RegExp(`MFT record 0 at byte ${mappingPairs}: run of 1 clusters at cluster \\d+ is outside`),
    },
  ];
  for (const { what, edits, message } of cases) {
    const reader = patched(original, edits);
    await t.rejects(ntfsFilesystem.open(reader), { name: 'FormatError', message }, what);
    await t.rejects(
      ntfsFilesystem.open(reader),
      { message: /^damaged\.img: / },
      `${what}: the message names the volume first`,
    );
  }
  t.equal(
    await ntfsFilesystem.detect(patched(original, [[3, [0x4e, 0x54, 0x46, 0x53, 0x21]]])),
    false,
    'a wrong OEM id is not detected',
  );
  const intact = await ntfsFilesystem.open(new MemoryBlockReader(original, 'intact.img'));
  t.equal(intact.info.type, 'ntfs', 'the same bytes unpatched open');
});

t.test('warnings: a hibernated Windows, a dirty volume', async (t) => {
  for (const magic of ['hibr', 'wake']) {
    const directory = await tempDir(t);
    const image = await makeNtfsImage(path.join(directory, `${magic}.img`), 32 * MiB);
    await withNtfsMount(t, image, async (root) => {
      const header = Buffer.alloc(8192);
      header.write(magic, 0, 'latin1');
      await fs.writeFile(path.join(root, 'hiberfil.sys'), header);
    });
    const { volume } = await openNtfs(t, image);
    if (magic === 'hibr') t.match(volume.warnings, [/Windows is hibernated/], 'hiberfil.sys with a "hibr" header');
    else t.same(volume.warnings, [], 'hiberfil.sys after resuming');

    if (magic !== 'wake') continue;
    // Set the dirty bit in $Volume's $VOLUME_INFORMATION, as Windows does while mounted.
    const bytes = await fs.readFile(image);
    const recordSize = 2 ** -bytes.readInt8(64);
    const volumeRecord = Number(bytes.readBigInt64LE(48)) * bytes.readUInt16LE(11) * bytes[13]! + 3 * recordSize;
    let attribute = volumeRecord + bytes.readUInt16LE(volumeRecord + 20);
    while (bytes.readUInt32LE(attribute) !== 0x70) attribute += bytes.readUInt32LE(attribute + 4);
    const flags = attribute + bytes.readUInt16LE(attribute + 20) + 10;
    t.not(flags % 512, 510, 'the flags are not under a fixup');
    bytes.writeUInt16LE(bytes.readUInt16LE(flags) | 1, flags);
    const dirty = await ntfsFilesystem.open(new MemoryBlockReader(bytes, 'dirty.img'));
    t.match(dirty.warnings, [/^dirty\.img: NTFS volume is marked dirty/]);
  }
});
