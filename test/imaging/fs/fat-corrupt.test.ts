// Damaged FAT volumes: loops and bad links in cluster chains, garbage in directory
// clusters and broken long-name sets. Each fails with a FormatError naming the path (or
// falls back the way mtools does), and random damage never surfaces as anything else.
import fs from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { FormatError } from '../../../src/core/errors.js';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { fatFilesystem } from '../../../imaging/fs/fat.js';
import type { FileTree } from '../../../imaging/fs/filesystem.js';
import { Prng, textLike } from '../../helpers/content.js';
import { MiB, readAt } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { fsckFat, makeFatImage, mcopyInto, mcopyOut, openReader, patch, walkLocal, walkTree } from './fat-fixtures.js';

interface Layout {
  fatType: 16 | 32;
  fatOffset: number;
  fatBytes: number;
  fatCount: number;
  clusterCount: number;
}

async function layoutOf(image: string): Promise<Layout> {
  const sector = await readAt(image, 0, 512);
  const bytesPerSector = sector.readUInt16LE(11);
  const fat16Size = sector.readUInt16LE(22);
  const fatSectors = fat16Size || sector.readUInt32LE(36);
  const totalSectors = sector.readUInt16LE(19) || sector.readUInt32LE(32);
  const rootSectors = Math.ceil((sector.readUInt16LE(17) * 32) / bytesPerSector);
  const dataSectors = totalSectors - sector.readUInt16LE(14) - sector[16]! * fatSectors - rootSectors;
  return {
    fatType: fat16Size ? 16 : 32,
    fatOffset: sector.readUInt16LE(14) * bytesPerSector,
    fatBytes: fatSectors * bytesPerSector,
    fatCount: sector[16]!,
    clusterCount: Math.floor(dataSectors / sector[13]!),
  };
}

/** Set the FAT entry of `cluster` in every FAT copy, so no copy can paper over it. */
async function setFatEntry(image: string, layout: Layout, cluster: number, value: number): Promise<void> {
  const width = layout.fatType / 8;
  const bytes = Buffer.alloc(width);
  if (width === 2) bytes.writeUInt16LE(value);
  else bytes.writeUInt32LE(value);
  for (let copy = 0; copy < layout.fatCount; copy++)
    await patch(image, layout.fatOffset + copy * layout.fatBytes + cluster * width, bytes);
}

/** The first cluster of the entry behind a node (its inode is the entry's byte offset / 32). */
async function firstCluster(image: string, inode: number): Promise<number> {
  const entry = await readAt(image, inode * 32, 32);
  return entry.readUInt16LE(20) * 0x10000 + entry.readUInt16LE(26);
}

async function buildVolume(directory: string, fatType: 16 | 32): Promise<string> {
  const image = await makeFatImage(path.join(directory, `fat${fatType}.img`), {
    fatType,
    size: fatType === 16 ? 32 * MiB : 128 * MiB,
    sectorsPerCluster: 2,
  });
  const source = path.join(directory, `source${fatType}`);
  const prng = new Prng(fatType);
  await fs.mkdir(path.join(source, 'dir', 'sub'), { recursive: true });
  await fs.writeFile(path.join(source, 'dir', 'victim.bin'), textLike(prng, 8 * 1024));
  await fs.writeFile(path.join(source, 'dir', 'bystander.txt'), textLike(prng, 5000));
  await fs.writeFile(path.join(source, 'dir', 'A long file name.txt'), 'long name\n');
  await fs.writeFile(path.join(source, 'dir', 'XX smile.txt'), 'smile\n');
  for (let index = 0; index < 12; index++)
    await fs.writeFile(path.join(source, 'dir', 'sub', `inner file ${index}.txt`), textLike(prng, 700));
  await mcopyInto(image, source);
  return image;
}

async function openTree(t: Test, image: string): Promise<FileTree> {
  const volume = await fatFilesystem.open(await openReader(t, image));
  return volume.files!();
}

for (const fatType of [16, 32] as const) {
  t.test(`FAT${fatType}: broken cluster chains are FormatErrors naming the file`, async (t) => {
    const directory = await tempDir(t);
    const pristine = await buildVolume(directory, fatType);
    const layout = await layoutOf(pristine);
    const victimInode = (await (await openTree(t, pristine)).lookup('/dir/victim.bin')).inode;
    const first = await firstCluster(pristine, victimInode);
    const damages: { what: string; cluster: number; value: number; message: RegExp }[] = [
      {
        what: 'a loop',
        cluster: first + 5,
        value: first + 2,
        message: new RegExp(
          `/dir/victim.bin: cluster chain loops back to cluster ${first + 2} after 6 clusters \\(FAT entry at byte ${layout.fatOffset + ((first + 5) * layout.fatType) / 8}\\)`,
        ),
      },
      {
        what: 'a link out of range',
        cluster: first + 3,
        value: layout.clusterCount + 50,
        message: new RegExp(
          `/dir/victim.bin: cluster chain leads from cluster ${first + 3} to cluster ${layout.clusterCount + 50}, outside clusters`,
        ),
      },
      {
        what: 'a free cluster in the chain',
        cluster: first + 3,
        value: 0,
        message: /\/dir\/victim.bin: cluster chain leads from cluster \d+ to a free cluster/,
      },
      {
        what: 'a bad cluster in the chain',
        cluster: first + 3,
        value: fatType === 16 ? 0xfff7 : 0x0ffffff7,
        message: /\/dir\/victim.bin: cluster chain leads from cluster \d+ to a cluster marked bad/,
      },
      {
        what: 'a chain too short for the size',
        cluster: first + 3,
        value: fatType === 16 ? 0xffff : 0x0fffffff,
        message: /\/dir\/victim.bin: cluster chain ends after 4 of the 8 clusters its size needs/,
      },
    ];
    for (const damage of damages) {
      const image = path.join(directory, 'damaged.img');
      await fs.copyFile(pristine, image);
      await setFatEntry(image, layout, damage.cluster, damage.value);
      t.notOk((await fsckFat(image)).clean, `${damage.what}: fsck.fat sees the damage too`);
      const { reader, close } = await DeviceBlockReader.open(image);
      try {
        const volume = await fatFilesystem.open(reader);
        await volume.usedRanges();
        const tree = await volume.files!();
        const victim = await tree.lookup('/dir/victim.bin');
        await t.rejects(
          tree.read(victim, 0, 1 << 20),
          { name: 'FormatError', message: damage.message },
          `${damage.what}: reading the file fails by name`,
        );
        await tree
          .read(victim, 0, 1)
          .catch((error: Error) => t.match(error.message, image, `${damage.what}: the message names the volume`));
        const bystander = await tree.lookup('/dir/bystander.txt');
        t.equal((await tree.read(bystander, 0, 1 << 20)).length, 5000, `${damage.what}: other files still read`);
      } finally {
        await close();
      }
    }
  });

  t.test(`FAT${fatType}: a corrupt directory cluster is a FormatError naming the directory`, async (t) => {
    const directory = await tempDir(t);
    const image = await buildVolume(directory, fatType);
    const layout = await layoutOf(image);
    const subInode = (await (await openTree(t, image)).lookup('/dir/sub')).inode;
    const subCluster = await firstCluster(image, subInode);
    const dataOffset = await dataStart(image);
    const garbage = Buffer.alloc(1024);
    new Prng(4242).fill(garbage);
    await patch(image, dataOffset + (subCluster - 2) * 1024, garbage);
    let tree = await openTree(t, image);
    await t.rejects(
      tree.readdir(await tree.lookup('/dir/sub')),
      { name: 'FormatError', message: /directory \/dir\/sub: entry at byte \d+: / },
      'listing it fails by name',
    );
    await t.rejects(tree.lookup('/dir/sub/inner file 1.txt'), FormatError, 'so does a lookup through it');
    t.equal((await tree.readdir(await tree.lookup('/dir'))).length, 5, 'its parent still lists');

    // A directory whose chain points back at itself.
    const looped = path.join(directory, 'looped.img');
    await fs.copyFile(image, looped);
    await patch(looped, dataOffset + (subCluster - 2) * 1024, Buffer.alloc(1024));
    await setFatEntry(looped, layout, subCluster, subCluster);
    tree = await openTree(t, looped);
    await t.rejects(tree.readdir(await tree.lookup('/dir/sub')), {
      name: 'FormatError',
      message: new RegExp(`directory /dir/sub: cluster chain loops back to cluster ${subCluster}`),
    });

    // A subdirectory entry pointing back at its parent: a walk must not descend forever.
    const cycle = path.join(directory, 'cycle.img');
    await fs.copyFile(image, cycle);
    const dirInode = (await (await openTree(t, cycle)).lookup('/dir')).inode;
    const dirCluster = await firstCluster(cycle, dirInode);
    await patch(cycle, subInode * 32 + 26, Buffer.from([dirCluster & 0xff, dirCluster >> 8]));
    await patch(cycle, subInode * 32 + 20, Buffer.from([(dirCluster >> 16) & 0xff, dirCluster >> 24]));
    t.notOk((await fsckFat(cycle)).clean, 'fsck.fat objects to the cycle');
    tree = await openTree(t, cycle);
    await t.rejects(walkTree(tree), {
      name: 'FormatError',
      message: new RegExp(`directory /dir/sub starts at cluster ${dirCluster}, which belongs to directory /dir`),
    });
  });

  t.test(`FAT${fatType}: long names that do not check out fall back to the short name, as in mtools`, async (t) => {
    const directory = await tempDir(t);
    const image = await buildVolume(directory, fatType);
    let tree = await openTree(t, image);
    const longNamed = await tree.lookup('/dir/A long file name.txt');
    // The long-name entry right before the short entry carries the checksum in byte 13.
    const checksumAt = (longNamed.inode - 1) * 32 + 13;
    const checksum = (await readAt(image, checksumAt, 1))[0]!;
    await patch(image, checksumAt, Buffer.from([checksum ^ 0x5a]));
    // A name outside the Basic Multilingual Plane, as Windows and Linux write it: a surrogate pair.
    const smile = await tree.lookup('/dir/XX smile.txt');
    const lfn = (smile.inode - 1) * 32;
    t.equal((await readAt(image, lfn + 1, 4)).toString('utf16le'), 'XX');
    await patch(image, lfn + 1, Buffer.from('😀', 'utf16le'));

    tree = await openTree(t, image);
    const names = (await tree.readdir(await tree.lookup('/dir'))).map((entry) => entry.name).sort();
    t.same(names, ['ALONGF~1.TXT', 'bystander.txt', 'sub', 'victim.bin', '😀 smile.txt'].sort());
    const extracted = path.join(directory, 'extracted');
    await fs.mkdir(extracted);
    await mcopyOut(image, extracted);
    const mtoolsNames = [...(await walkLocal(path.join(extracted, 'dir'))).keys()]
      .filter((key) => !key.includes('/sub/'))
      .map((key) => key.slice(1));
    t.ok(mtoolsNames.includes('ALONGF~1.TXT'), 'mtools shows the short name for the broken set too');
    t.equal((await tree.lookup('/dir/😀 smile.txt')).inode, smile.inode);
  });
}

async function dataStart(image: string): Promise<number> {
  return (await fsckFat(image)).dataStart;
}

t.test('random damage to FATs and directories surfaces only as FormatError', async (t) => {
  const directory = await tempDir(t);
  const image = await buildVolume(directory, 16);
  const layout = await layoutOf(image);
  const dataOffset = await dataStart(image);
  const original = await fs.readFile(image);
  // The first FAT, the root directory and the first data clusters (where the directories are).
  const regions: [number, number][] = [
    [layout.fatOffset, layout.fatOffset + 512],
    [dataOffset - 16384, dataOffset],
    [dataOffset, dataOffset + 64 * 1024],
  ];
  const prng = new Prng(31337);
  let walked = 0;
  let refused = 0;
  for (let round = 0; round < 150; round++) {
    const changes: number[] = [];
    for (let flip = 0; flip < 1 + (prng.next() % 8); flip++) {
      const [start, end] = regions[prng.next() % regions.length]!;
      changes.push(start + (prng.next() % (end - start)));
    }
    for (const offset of changes) await patch(image, offset, Buffer.from([prng.next() & 0xff]));
    const { reader, close } = await DeviceBlockReader.open(image);
    try {
      const volume = await fatFilesystem.open(reader);
      await volume.usedRanges();
      await walkTree(await volume.files!(), 64 * 1024);
      walked++;
    } catch (error) {
      if (!(error instanceof FormatError)) {
        t.fail(`round ${round}: ${error instanceof Error ? error.stack : String(error)}`);
        return;
      }
      refused++;
    } finally {
      await close();
    }
    for (const offset of changes) await patch(image, offset, original.subarray(offset, offset + 1));
  }
  t.ok(walked > 0 && refused > 0, `both outcomes happen (${walked} walked, ${refused} refused)`);
});
