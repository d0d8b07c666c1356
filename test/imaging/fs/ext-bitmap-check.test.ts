// Damaged ext2/3/4 bitmaps through the real capture and restore: a zeroed block bitmap,
// a file's blocks marked free, a zeroed inode bitmap, an inode table marked free and
// random bytes flipped in a bitmap. Whatever the damage, the restored copy is no worse
// than its source: e2fsck -fn reports the same problems and every file debugfs can
// read comes back with the same contents.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { readGroupDescriptors, type GroupDescriptors } from '../../../imaging/fs/ext/group-descriptors.js';
import {
  parseSuperblock,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  type Superblock,
} from '../../../imaging/fs/ext/superblock.js';
import { Prng } from '../../helpers/content.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { tempDir } from '../../helpers/tmp.js';
import { captureAndRestore, e2fsckReport } from './damage-roundtrip.js';
import { hashTree, largePattern, makeExtImage, MiB, patternBytes, withMounted } from './ext-fixtures.js';

type ExtType = 'ext2' | 'ext3' | 'ext4';

interface Geometry {
  superblock: Superblock;
  groups: GroupDescriptors;
}

async function geometryOf(image: string): Promise<Geometry> {
  const { reader, close } = await DeviceBlockReader.open(image);
  try {
    const superblock = parseSuperblock(await reader.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE), reader.size, image);
    return { superblock, groups: await readGroupDescriptors(reader, superblock) };
  } finally {
    await close();
  }
}

async function fileBlocks(image: string, file: string): Promise<number[]> {
  const { stdout } = await execa('debugfs', ['-R', `blocks ${file}`, image], { stderr: 'ignore' });
  return stdout.trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The blocks of a file's map itself: indirect blocks (IND, DIND, TIND) or extent tree blocks (ETB). */
async function mapBlocks(image: string, file: string): Promise<number[]> {
  const { stdout } = await execa('debugfs', ['-R', `stat ${file}`, image], { stderr: 'ignore' });
  return [...stdout.matchAll(/\((?:IND|DIND|TIND|ETB\d+)\):(\d+)/g)].map((match) => Number(match[1]));
}

async function patch(image: string, offset: number, edit: (bytes: Buffer) => void, length: number): Promise<void> {
  const handle = await fs.open(image, 'r+');
  try {
    const bytes = Buffer.alloc(length);
    await handle.read(bytes, 0, length, offset);
    edit(bytes);
    await handle.write(bytes, 0, length, offset);
  } finally {
    await handle.close();
  }
}

/**
 * Mark `blocks` free the way a buggy driver would: through debugfs, which also updates
 * the free counts and (ext4) the bitmap checksums, so nothing but the cross-check notices.
 */
async function freeBlocks(image: string, blocks: number[]): Promise<void> {
  const commands: string[] = [];
  for (let index = 0; index < blocks.length; ) {
    let end = index + 1;
    while (end < blocks.length && blocks[end] === blocks[end - 1]! + 1) end++;
    commands.push(`freeb ${blocks[index]} ${end - index}`);
    index = end;
  }
  await execa('debugfs', ['-w', '-f', '-', image], { input: commands.join('\n'), stdio: ['pipe', 'ignore', 'ignore'] });
}

interface Damage {
  name: string;
  /** What the capture must do: 'raw' when the bitmap marks metadata free. */
  method: 'raw' | 'used-blocks' | 'either';
  warning?: RegExp;
  /** The types the damage applies to (ext4's extents of this file all fit in its inode). */
  onlyFor?: ExtType[];
  /** False when the damage leaves the bitmap's checksum wrong (ext4 then keeps the group whole). */
  checksummed?: boolean;
  apply(image: string, geometry: Geometry): Promise<void>;
}

const damages: Damage[] = [
  {
    name: 'zeroed block bitmap',
    method: 'raw',
    warning:
      /on .*: the block bitmap marks block \d+ \(.*\) free; the allocation bitmap is damaged, capturing every block \(raw\)/,
    checksummed: false,
    apply: async (image, { superblock, groups }) =>
      patch(image, groups.blockBitmap[0]! * superblock.blockSize, (bytes) => bytes.fill(0), superblock.blockSize),
  },
  {
    name: "a file's blocks marked free",
    method: 'used-blocks',
    warning: /on .*: \d+ blocks referenced by inode \d+ are marked free in the block bitmap; captured anyway/,
    apply: async (image) => freeBlocks(image, await fileBlocks(image, '/data/big')),
  },
  {
    name: "a file's indirect blocks marked free",
    method: 'used-blocks',
    warning: /on .*: \d+ blocks? referenced by inode \d+ (is|are) marked free in the block bitmap; captured anyway/,
    onlyFor: ['ext2', 'ext3'],
    apply: async (image) => freeBlocks(image, await mapBlocks(image, '/data/big')),
  },
  {
    name: 'zeroed inode bitmap',
    method: 'used-blocks',
    apply: async (image, { superblock, groups }) =>
      patch(image, groups.inodeBitmap[0]! * superblock.blockSize, (bytes) => bytes.fill(0), superblock.blockSize),
  },
  {
    name: 'inode table marked free',
    method: 'raw',
    warning: /the block bitmap marks block \d+ \(inode table of group 0\) free/,
    apply: async (image, { superblock, groups }) =>
      freeBlocks(
        image,
        Array.from({ length: superblock.inodeBlocksPerGroup }, (_, index) => groups.inodeTable[0]! + index),
      ),
  },
  {
    name: 'random bytes of the block bitmap',
    method: 'either',
    checksummed: false,
    apply: async (image, { superblock, groups }) => {
      const prng = new Prng(0xb17);
      await patch(
        image,
        groups.blockBitmap[0]! * superblock.blockSize,
        (bytes) => {
          for (let flip = 0; flip < 24; flip++) bytes[prng.next() % 512]! ^= 1 << (prng.next() % 8);
        },
        superblock.blockSize,
      );
    },
  },
];

/** A small volume with a tree of files, a large file (extents, or double indirect blocks) and a directory of many entries. */
async function buildBase(type: ExtType): Promise<string> {
  const image = await makeExtImage(t, type, 12 * MiB, ['-b', '1024']);
  await withMounted(t, image, async (root) => {
    await fs.mkdir(path.join(root, 'data'));
    await fs.writeFile(path.join(root, 'data', 'big'), largePattern(1, 1536 * 1024));
    await fs.mkdir(path.join(root, 'data', 'many'));
    for (let index = 0; index < 150; index++)
      await fs.writeFile(path.join(root, 'data', 'many', `file-${index}`), patternBytes(index, 100 + index * 37));
    await fs.symlink(`/data/many/${'x'.repeat(90)}`, path.join(root, 'data', 'slow-link'));
  });
  return image;
}

/** Everything debugfs reads out of an image, with contents hashed. */
async function readableFiles(image: string): Promise<Map<string, unknown>> {
  const out = await tempDir(t, 'b365-rdump-');
  await execa('debugfs', ['-R', `rdump / ${out}`, image], { reject: false, stdio: 'ignore' });
  return hashTree(out);
}

async function checkRoundTrip(
  t: Test,
  server: TestServer,
  base: string,
  type: ExtType,
  damage: Damage,
  index: number,
): Promise<void> {
  const directory = await tempDir(t);
  const image = path.join(directory, `${type}-${index}.img`);
  await fs.copyFile(base, image);
  await damage.apply(image, await geometryOf(image));
  const sourceCheck = await e2fsckReport(image);
  const sourceFiles = await readableFiles(image);

  const trip = await captureAndRestore(server, image, `${type}-damage-${index}`);
  // ext4's bitmaps carry checksums: bytes damaged in place are caught by that first, and the whole group kept.
  const caughtByChecksum = type === 'ext4' && damage.checksummed === false;
  const method = caughtByChecksum ? 'used-blocks' : damage.method;
  const warning = caughtByChecksum
    ? /block bitmap of group 0 at byte \d+ fails its checksum: the whole group is kept/
    : damage.warning;
  if (method !== 'either') t.equal(trip.method, method, `${type}, ${damage.name}: captured ${method}`);
  if (warning) t.match(trip.warnings.join('\n'), warning, `${type}, ${damage.name}: the warning says why`);
  t.equal(
    await e2fsckReport(trip.restored),
    sourceCheck,
    `${type}, ${damage.name}: e2fsck -fn reports the same on both`,
  );
  t.same(
    await readableFiles(trip.restored),
    sourceFiles,
    `${type}, ${damage.name}: every readable file comes back the same`,
  );
}

for (const type of ['ext2', 'ext3', 'ext4'] as const) {
  t.test(`${type}: damaged bitmaps restore no worse than the source`, async (t) => {
    const server = await startServer(t);
    const base = await buildBase(type);
    for (const [index, damage] of damages.entries())
      if (!damage.onlyFor || damage.onlyFor.includes(type)) await checkRoundTrip(t, server, base, type, damage, index);
  });
}
