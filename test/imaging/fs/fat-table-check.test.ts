// A damaged FAT through the real capture and restore: the FAT32 root directory's chain
// marked free (captured raw), a file's chain cleared in the FAT (its clusters captured
// anyway), the second FAT zeroed. The restored copy is no worse than its source:
// fsck.fat -n reports the same, and every file mtools reads comes back the same.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { parseBootSector } from '../../../imaging/fs/fat/boot-sector.js';
import { parseDirectory } from '../../../imaging/fs/fat/directory.js';
import { readDirectoryBytes } from '../../../imaging/fs/fat/file-tree.js';
import { FatTable } from '../../../imaging/fs/fat/table.js';
import { textLike, Prng } from '../../helpers/content.js';
import { MiB } from '../../helpers/disk.js';
import { startServer } from '../../helpers/server.js';
import { tempDir } from '../../helpers/tmp.js';
import { captureAndRestore, fsckFatReport } from './damage-roundtrip.js';
import { hashTree } from './ext-fixtures.js';
import { makeFatImage, mcopyInto, MTOOLS_ENV } from './fat-fixtures.js';

interface Layout {
  fatOffset: number;
  fatBytes: number;
  fatType: 16 | 32;
}

async function layoutOf(image: string, fatType: 16 | 32): Promise<Layout> {
  const boot = Buffer.alloc(512);
  const handle = await fs.open(image, 'r');
  await handle.read(boot, 0, 512, 0);
  await handle.close();
  const bytesPerSector = boot.readUInt16LE(11);
  const fatSectors = boot.readUInt16LE(22) || boot.readUInt32LE(36);
  return { fatOffset: boot.readUInt16LE(14) * bytesPerSector, fatBytes: fatSectors * bytesPerSector, fatType };
}

/** Set FAT entry `cluster` in the first FAT only. */
async function setEntry(image: string, layout: Layout, cluster: number, value: number): Promise<void> {
  const width = layout.fatType / 8;
  const bytes = Buffer.alloc(width);
  if (width === 2) bytes.writeUInt16LE(value);
  else bytes.writeUInt32LE(value);
  const handle = await fs.open(image, 'r+');
  await handle.write(bytes, 0, width, layout.fatOffset + cluster * width);
  await handle.close();
}

/** The bytes of clusters [first, first + count) of a FAT volume. */
async function clusterBytes(image: string, first: number, count: number): Promise<Buffer> {
  const { reader, close } = await DeviceBlockReader.open(image);
  try {
    const { geometry } = parseBootSector(await reader.read(0, 512), reader.size, image);
    const table = new FatTable(reader, geometry);
    return await reader.read(table.clusterOffset(first), count * geometry.clusterSize);
  } finally {
    await close();
  }
}

/** The first cluster of a file in the root directory, read with the module's own parsers. */
async function firstClusterOf(image: string, name: string): Promise<number> {
  const { reader, close } = await DeviceBlockReader.open(image);
  try {
    const { geometry } = parseBootSector(await reader.read(0, 512), reader.size, image);
    const table = new FatTable(reader, geometry);
    const { bytes, pieces } = await readDirectoryBytes(
      reader,
      geometry,
      table,
      geometry.fatType === 32 ? geometry.rootCluster : 0,
      '/',
    );
    const entry = parseDirectory(bytes, pieces, geometry, image, '/').find((candidate) => candidate.name === name);
    if (!entry) throw new Error(`${image}: no ${name} in the root directory`);
    return entry.firstCluster;
  } finally {
    await close();
  }
}

async function readableFiles(image: string): Promise<Map<string, unknown>> {
  const out = await tempDir(t, 'b365-mcopy-');
  await execa('mcopy', ['-s', '-n', '-i', image, '::/*', out], { env: MTOOLS_ENV, reject: false });
  return hashTree(out);
}

async function buildVolume(directory: string, name: string, fatType: 16 | 32): Promise<string> {
  const image = await makeFatImage(path.join(directory, `${name}.img`), {
    fatType,
    size: fatType === 32 ? 40 * MiB : 16 * MiB,
    sectorsPerCluster: 1,
  });
  const source = path.join(directory, `${name}-files`);
  await fs.mkdir(path.join(source, 'docs'), { recursive: true });
  for (let index = 0; index < 12; index++)
    await fs.writeFile(
      path.join(source, 'docs', `note${index}.txt`),
      textLike(new Prng(index + 1), 3000 + index * 700),
    );
  await fs.writeFile(path.join(source, 'VICTIM.BIN'), textLike(new Prng(99), 40_000));
  await mcopyInto(image, source);
  return image;
}

for (const fatType of [16, 32] as const) {
  t.test(`FAT${fatType}: damaged tables restore no worse than the source`, async (t) => {
    const server = await startServer(t);
    const directory = await tempDir(t);
    const victimClusters = Math.ceil(40_000 / 512);
    const cases: {
      name: string;
      method: string;
      warning?: RegExp;
      apply(image: string, layout: Layout): Promise<void>;
      same?(source: string, restored: string): Promise<[Buffer, Buffer]>;
    }[] = [
      {
        name: "a file's chain cleared",
        method: 'used-blocks',
        warning: /vfat on .*: \d+ clusters referenced by file \/VICTIM.BIN are marked free in the FAT; captured anyway/,
        apply: async (image, layout) => {
          const first = await firstClusterOf(image, 'VICTIM.BIN');
          for (let cluster = first; cluster < first + victimClusters; cluster++)
            await setEntry(image, layout, cluster, 0);
        },
        // Its data is still where it was in the source, for a repair (or an undelete) to find.
        same: async (source, restored) => {
          const first = await firstClusterOf(source, 'VICTIM.BIN');
          return [
            await clusterBytes(restored, first, victimClusters),
            await clusterBytes(source, first, victimClusters),
          ];
        },
      },
      {
        name: 'second FAT zeroed',
        method: 'used-blocks',
        apply: async (image, layout) => {
          const handle = await fs.open(image, 'r+');
          await handle.write(Buffer.alloc(layout.fatBytes), 0, layout.fatBytes, layout.fatOffset + layout.fatBytes);
          await handle.close();
        },
      },
    ];
    if (fatType === 32) {
      cases.push({
        name: 'root directory marked free',
        method: 'raw',
        warning:
          /vfat on .*: the FAT marks cluster 2 \(root directory\) free; the allocation bitmap is damaged, capturing every block \(raw\)/,
        apply: async (image, layout) => setEntry(image, layout, 2, 0),
      });
    }
    for (const [index, damage] of cases.entries()) {
      const image = await buildVolume(directory, `fat${fatType}-${index}`, fatType);
      await damage.apply(image, await layoutOf(image, fatType));
      const sourceCheck = await fsckFatReport(image);
      const sourceFiles = await readableFiles(image);
      const trip = await captureAndRestore(server, image, `fat${fatType}-damage-${index}`);
      t.equal(trip.method, damage.method, `${damage.name}: captured ${damage.method}`);
      if (damage.warning) t.match(trip.warnings.join('\n'), damage.warning, `${damage.name}: the warning says why`);
      t.equal(await fsckFatReport(trip.restored), sourceCheck, `${damage.name}: fsck.fat -n reports the same on both`);
      t.same(
        await readableFiles(trip.restored),
        sourceFiles,
        `${damage.name}: every readable file comes back the same`,
      );
      if (damage.same) {
        const [restored, source] = await damage.same(image, trip.restored);
        t.ok(restored.equals(source), `${damage.name}: the clusters the file's entry reaches come back`);
      }
    }
  });
}
