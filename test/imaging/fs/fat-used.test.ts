// The used-block map of FAT volumes: its size against partclone and fsck.fat, and its
// completeness: a volume rebuilt from the used ranges alone (the rest zeros or garbage)
// passes fsck.fat and gives back every file identical through mtools.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { fatFilesystem } from '../../../imaging/fs/fat.js';
import type { RangeList } from '../../../imaging/ranges.js';
import { Prng, textLike } from '../../helpers/content.js';
import { MiB } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  fsckFat,
  makeFatImage,
  mcopyInto,
  mcopyOut,
  mtools,
  openReader,
  partcloneUsedBlocks,
  patch,
  walkLocal,
  type MkfsOptions,
} from './fat-fixtures.js';
import { copyRanges } from '../../helpers/ranges.js';

/** A tree of files of many sizes in a few directories, with deletions leaving holes behind. */
async function fillVolume(image: string, directory: string, seed: number): Promise<void> {
  const prng = new Prng(seed);
  const source = path.join(directory, `source-${seed}`);
  const names: string[] = [];
  for (let index = 0; index < 240; index++) {
    const folder = `dir${index % 6}`;
    await fs.mkdir(path.join(source, folder), { recursive: true });
    const size = index % 17 === 0 ? 0 : prng.next() % (index % 5 === 0 ? 200_000 : 9_000);
    const name = `${folder}/file ${index} with a long name.txt`;
    await fs.writeFile(path.join(source, name), textLike(prng, size));
    names.push(name);
  }
  await mcopyInto(image, source);
  const doomed = names.filter((_, index) => index % 3 === 1).map((name) => `::/${name}`);
  await mtools('mdel', ['-i', image, ...doomed]);
}

async function fillUnused(target: string, size: number, ranges: RangeList, byte: number): Promise<void> {
  const output = await fs.open(target, 'r+');
  try {
    let position = 0;
    for (const [start, end] of [...ranges.ranges, [size, size] as const]) {
      if (start > position) await output.write(Buffer.alloc(start - position, byte), 0, start - position, position);
      position = end;
    }
  } finally {
    await output.close();
  }
}

const volumes: (MkfsOptions & { name: string })[] = [
  { name: 'fat12', fatType: 12, size: 8 * MiB, sectorsPerCluster: 4 },
  { name: 'fat16', fatType: 16, size: 65 * MiB, sectorsPerCluster: 4, blocks: 65539 },
  { name: 'fat32', fatType: 32, size: 128 * MiB, sectorsPerCluster: 1 },
];

for (const options of volumes) {
  t.test(`${options.name}: used ranges match the oracles and hold everything`, async (t) => {
    const directory = await tempDir(t);
    const image = await makeFatImage(path.join(directory, `${options.name}.img`), options);
    await fillVolume(image, directory, options.fatType);
    const volume = await fatFilesystem.open(await openReader(t, image));
    const used = await volume.usedRanges();
    t.equal(used.totalBytes, volume.info.usedBytes, 'usedBytes is the size of the used ranges');

    const fsck = await fsckFat(image);
    t.ok(fsck.clean, 'the filled volume is clean');
    const clusterSize = volume.info.blockSize;
    t.equal(clusterSize, fsck.clusterSize);
    const tail = volume.info.totalBytes - fsck.dataStart - fsck.clusters * clusterSize;
    t.equal(
      volume.info.usedBytes,
      fsck.dataStart + fsck.usedClusters * clusterSize + tail,
      `metadata + ${fsck.usedClusters} used clusters (fsck.fat) + ${tail} bytes after the last cluster`,
    );
    if (options.blocks) t.ok(tail > 0, 'this volume ends in a partial cluster');
    if (options.fatType !== 12) {
      // partclone reads FAT12 entries 16 bits at a time and miscounts them: not an oracle there.
      const partclone = await partcloneUsedBlocks(image);
      t.equal(
        volume.info.usedBytes,
        partclone.usedBlocks * partclone.blockSize,
        `partclone.fat counts the same ${partclone.usedBlocks} used sectors`,
      );
    }

    const original = path.join(directory, 'original');
    await fs.mkdir(original);
    await mcopyOut(image, original);
    const expected = await walkLocal(original);
    t.ok(expected.size > 150, `${expected.size} files and directories extracted`);
    for (const [what, byte] of [
      ['zeros', 0],
      ['garbage', 0xa5],
    ] as const) {
      const rebuilt = path.join(directory, `rebuilt-${what}.img`);
      await copyRanges(image, rebuilt, used);
      if (byte) await fillUnused(rebuilt, options.size, used, byte);
      const rebuiltFsck = await fsckFat(rebuilt);
      t.ok(rebuiltFsck.clean, `used ranges only, the rest ${what}: fsck.fat -n is clean`);
      t.equal(rebuiltFsck.usedClusters, fsck.usedClusters);
      const extracted = path.join(directory, `extracted-${what}`);
      await fs.mkdir(extracted);
      await mcopyOut(rebuilt, extracted);
      t.same(
        await walkLocal(extracted),
        expected,
        `used ranges only, the rest ${what}: every file reads back identical with mtools`,
      );
    }
  });
}

t.test('clusters marked bad are left out, as partclone does', async (t) => {
  const directory = await tempDir(t);
  const image = await makeFatImage(path.join(directory, 'bad.img'), {
    fatType: 16,
    size: 32 * MiB,
    sectorsPerCluster: 4,
  });
  await fillVolume(image, directory, 5);
  const before = await fatFilesystem.open(await openReader(t, image));
  const sector = await fs.readFile(image).then((bytes) => bytes.subarray(0, 512));
  const fatOffset = sector.readUInt16LE(14) * 512;
  const fatBytes = sector.readUInt16LE(22) * 512;
  const badClusters = [6000, 6001, 6002, 7000];
  for (let copy = 0; copy < sector[16]!; copy++) {
    for (const cluster of badClusters)
      await patch(image, fatOffset + copy * fatBytes + cluster * 2, Buffer.from([0xf7, 0xff]));
  }

  const after = await fatFilesystem.open(await openReader(t, image));
  t.equal(after.info.usedBytes, before.info.usedBytes, 'free clusters marked bad do not add to the used bytes');
  t.match(after.warnings, [/4 clusters are marked bad/]);
  const ranges = (await after.usedRanges()).ranges;
  const fsck = await fsckFat(image);
  const dataStart = fsck.dataStart;
  for (const cluster of badClusters) {
    const start = dataStart + (cluster - 2) * 2048;
    t.notOk(
      ranges.some(([rangeStart, rangeEnd]) => rangeStart < start + 2048 && rangeEnd > start),
      `bad cluster ${cluster} is not in the used ranges`,
    );
  }
  const partclone = await partcloneUsedBlocks(image);
  t.equal(after.info.usedBytes, partclone.usedBlocks * partclone.blockSize, 'partclone.fat agrees');
  t.ok(fsck.clean, 'fsck.fat accepts the bad marks');
  t.equal(
    fsck.usedClusters - badClusters.length,
    (after.info.usedBytes - dataStart) / 2048,
    'fsck.fat counts bad clusters as used; we do not',
  );
});

t.test('the used-block map of a 1 GiB FAT32 volume with 2 million clusters takes well under a second', async (t) => {
  const directory = await tempDir(t);
  const image = await makeFatImage(path.join(directory, 'big.img'), {
    fatType: 32,
    size: 1024 * MiB,
    sectorsPerCluster: 1,
  });
  const payload = path.join(directory, 'payload');
  await fs.mkdir(payload);
  await fs.writeFile(path.join(payload, 'data.bin'), textLike(new Prng(9), 8 * MiB));
  await mcopyInto(image, payload);
  const reader = await openReader(t, image);
  const started = process.hrtime.bigint();
  const volume = await fatFilesystem.open(reader);
  const used = await volume.usedRanges();
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  t.ok(elapsedMs < 1000, `open and used ranges in ${elapsedMs.toFixed(0)} ms`);
  const fsck = await fsckFat(image);
  t.ok(fsck.clusters > 2_000_000, `${fsck.clusters} clusters`);
  t.equal(
    used.totalBytes,
    fsck.dataStart + fsck.usedClusters * 512 + (volume.info.totalBytes - fsck.dataStart - fsck.clusters * 512),
  );
});
