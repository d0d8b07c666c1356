// Seeded damage in FAT12/16/32 metadata (boot sector, FAT, root directory, a
// subdirectory): the reader succeeds or says what is wrong, never crashes or hangs, and
// a usable capture map restores to what fsck.fat finds as damaged as the source.
// B365_FUZZ_COUNT=500 runs a bigger corpus.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { fatFilesystem } from '../../../imaging/fs/fat.js';
import { parseBootSector } from '../../../imaging/fs/fat/boot-sector.js';
import { parseDirectory } from '../../../imaging/fs/fat/directory.js';
import { readDirectoryBytes } from '../../../imaging/fs/fat/file-tree.js';
import { FatTable } from '../../../imaging/fs/fat/table.js';
import type { Range } from '../../../imaging/ranges.js';
import { Prng, textLike } from '../../helpers/content.js';
import { MiB } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { fsckFatReport } from './damage-roundtrip.js';
import { makeFatImage, mcopyInto } from './fat-fixtures.js';
import { fuzzFilesystem } from './fuzz-driver.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';

/** The boot sector, the used part of the first FAT, the root directory and the subdirectory "docs". */
async function metadataRegions(bytes: Buffer): Promise<Range[]> {
  const reader = new MemoryBlockReader(bytes, 'fat');
  const { geometry } = parseBootSector(await reader.read(0, 512), reader.size, 'fat');
  const table = new FatTable(reader, geometry);
  const regions: Range[] = [
    [0, 512],
    [geometry.fatOffset, geometry.fatOffset + 1024],
  ];
  const root = await readDirectoryBytes(
    reader,
    geometry,
    table,
    geometry.fatType === 32 ? geometry.rootCluster : 0,
    '/',
  );
  for (const piece of root.pieces)
    regions.push([piece.volumeOffset, piece.volumeOffset + Math.min(piece.length, 4096)]);
  const docs = parseDirectory(root.bytes, root.pieces, geometry, 'fat', '/').find((entry) => entry.name === 'docs')!;
  regions.push([table.clusterOffset(docs.firstCluster), table.clusterOffset(docs.firstCluster) + geometry.clusterSize]);
  return regions;
}

for (const [index, fatType] of ([12, 16, 32] as const).entries()) {
  t.test(`FAT${fatType}: damaged metadata`, async (t) => {
    const directory = await tempDir(t);
    const image = await makeFatImage(path.join(directory, `fat${fatType}.img`), {
      fatType,
      size: { 12: 4, 16: 8, 32: 36 }[fatType] * MiB,
      sectorsPerCluster: fatType === 12 ? 4 : 1,
    });
    const source = path.join(directory, 'files');
    await fs.mkdir(path.join(source, 'docs'), { recursive: true });
    for (let file = 0; file < 30; file++)
      await fs.writeFile(path.join(source, 'docs', `note-${file}.txt`), textLike(new Prng(file + 1), 300 + file * 211));
    await fs.writeFile(path.join(source, 'big.bin'), textLike(new Prng(77), 300_000));
    await mcopyInto(image, source);
    const bytes = await fs.readFile(image);
    await fuzzFilesystem(t, {
      name: `fat${fatType}`,
      module: fatFilesystem,
      base: bytes,
      regions: await metadataRegions(bytes),
      seed: 0xfa7 + index,
      defaultCount: 20,
      compareEvery: 3,
      check: fsckFatReport,
    });
  });
}
