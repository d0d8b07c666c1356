// Seeded damage in ext2 and ext4 metadata (superblock, descriptors, bitmaps, inode
// table, directory blocks): the reader succeeds or says what is wrong, never crashes or
// hangs, and a usable capture map restores to what e2fsck finds as damaged as the source.
// B365_FUZZ_COUNT=500 runs a bigger corpus.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { extFilesystem } from '../../../imaging/fs/ext.js';
import { readGroupDescriptors } from '../../../imaging/fs/ext/group-descriptors.js';
import { parseSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../../imaging/fs/ext/superblock.js';
import type { Range } from '../../../imaging/ranges.js';
import { e2fsckReport } from './damage-roundtrip.js';
import { makeExtImage, MiB, patternBytes, withMounted } from './ext-fixtures.js';
import { fuzzFilesystem } from './fuzz-driver.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';

async function directoryBlocks(image: string, directories: string[]): Promise<number[]> {
  const blocks: number[] = [];
  for (const directory of directories) {
    const { stdout } = await execa('debugfs', ['-R', `blocks ${directory}`, image], { stderr: 'ignore' });
    blocks.push(...stdout.trim().split(/\s+/).filter(Boolean).map(Number));
  }
  return blocks;
}

/** The metadata of the volume, as byte ranges: what the fuzz damages. */
async function metadataRegions(image: string, bytes: Buffer): Promise<Range[]> {
  const reader = new MemoryBlockReader(bytes, image);
  const superblock = parseSuperblock(await reader.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE), reader.size, image);
  const groups = await readGroupDescriptors(reader, superblock);
  const { blockSize } = superblock;
  const block = (first: number, count = 1): Range => [first * blockSize, (first + count) * blockSize];
  const regions: Range[] = [
    [SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE],
    block(superblock.firstDataBlock + 1, superblock.descriptorBlocks),
  ];
  for (let group = 0; group < groups.count; group++)
    regions.push(block(groups.blockBitmap[group]!), block(groups.inodeBitmap[group]!));
  regions.push(block(groups.inodeTable[0]!, Math.min(superblock.inodeBlocksPerGroup, 16)));
  for (const directory of await directoryBlocks(image, ['/', '/tree', '/tree/deep'])) regions.push(block(directory));
  return regions;
}

async function buildBase(type: 'ext2' | 'ext4'): Promise<{ image: string; bytes: Buffer }> {
  const image = await makeExtImage(t, type, 8 * MiB, ['-b', '1024', '-N', '512']);
  await withMounted(t, image, async (root) => {
    await fs.mkdir(path.join(root, 'tree', 'deep'), { recursive: true });
    for (let index = 0; index < 60; index++)
      await fs.writeFile(path.join(root, 'tree', `file-${index}`), patternBytes(index, 200 + index * 211));
    await fs.writeFile(path.join(root, 'tree', 'deep', 'big'), patternBytes(99, 600 * 1024));
    await fs.symlink('../tree/file-1', path.join(root, 'tree', 'deep', 'link'));
  });
  return { image, bytes: await fs.readFile(image) };
}

for (const [index, type] of (['ext2', 'ext4'] as const).entries()) {
  t.test(`${type}: damaged metadata`, async (t) => {
    const { image, bytes } = await buildBase(type);
    await fuzzFilesystem(t, {
      name: type,
      module: extFilesystem,
      base: bytes,
      regions: await metadataRegions(image, bytes),
      seed: 0xe47 + index,
      defaultCount: 30,
      compareEvery: 3,
      check: e2fsckReport,
    });
  });
}
