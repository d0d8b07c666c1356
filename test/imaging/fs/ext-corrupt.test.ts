// Damaged ext filesystems: a broken superblock or group descriptor fails open() with a
// FormatError naming the problem and its byte offset; a broken directory block, inode
// or extent tree fails the file access with a FormatError naming the path. Random
// damage never produces anything but FormatError or NotFoundError.
import fs from 'node:fs/promises';
import t from 'tap';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { extFilesystem } from '../../../imaging/fs/ext.js';
import type { FileNode, FileTree } from '../../../imaging/fs/filesystem.js';
import { FormatError, NotFoundError } from '../../../src/core/errors.js';
import { run } from '../../helpers/disk.js';
import { makeExtImage, MiB, openReader, patternBytes, withMounted } from './ext-fixtures.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';

async function patch(image: string, offset: number, bytes: Buffer): Promise<void> {
  const handle = await fs.open(image, 'r+');
  await handle.write(bytes, 0, bytes.length, offset);
  await handle.close();
}

async function debugfsWrite(image: string, ...commands: string[]): Promise<void> {
  await run('debugfs', ['-w', '-f', '-', image], { input: `${commands.join('\n')}\n` });
}

/** Byte offset of an inode, from `debugfs imap` ("located at block B, offset 0xO"). */
async function inodeOffset(image: string, file: string, blockSize: number): Promise<{ inode: number; offset: number }> {
  const text = await run('debugfs', ['-R', `imap ${file}`, image]);
  const match = /Inode (\d+) is part of block group \d+\s+located at block (\d+), offset 0x([0-9a-f]+)/.exec(text);
  if (!match) throw new Error(`debugfs imap: ${text}`);
  return { inode: Number(match[1]), offset: Number(match[2]) * blockSize + parseInt(match[3]!, 16) };
}

async function firstBlock(image: string, file: string): Promise<number> {
  const text = await run('debugfs', ['-R', `blocks ${file}`, image]);
  return Number(text.trim().split(/\s+/)[0]);
}

async function openError(image: string, size?: number): Promise<unknown> {
  const { reader, close } = await DeviceBlockReader.open(image, 0, size);
  try {
    await extFilesystem.open(reader);
    return null;
  } catch (error) {
    return error;
  } finally {
    await close();
  }
}

t.test('a damaged superblock or descriptor table fails open() with its offset', async (t) => {
  const pristine = await makeExtImage(t, 'ext4', 256 * MiB, ['-b', '4096']);
  const image = `${pristine}.work`;
  const fresh = () => fs.copyFile(pristine, image);

  await fresh();
  await patch(image, 1080, Buffer.from([0x00, 0x00]));
  const { reader, close } = await DeviceBlockReader.open(image);
  t.equal(await extFilesystem.detect(reader), false, 'no magic: not detected');
  await close();
  t.match(
    await openError(image),
    { constructor: FormatError, message: /superblock at byte 1024: bad magic 0x0000.*byte 1080/ },
    'bad magic',
  );

  await fresh();
  await patch(image, 1024 + 0x78, Buffer.from('tampered label'));
  t.match(
    await openError(image),
    { constructor: FormatError, message: /superblock at byte 1024: checksum 0x[0-9a-f]+ does not match.*byte 2044/ },
    'bad superblock checksum',
  );

  await fresh();
  await debugfsWrite(image, 'ssv blocks_per_group 12345');
  t.match(
    await openError(image),
    { constructor: FormatError, message: /12345 blocks per group is impossible/ },
    'impossible blocks per group',
  );

  await fresh();
  await debugfsWrite(image, 'ssv inodes_count 20000');
  t.match(
    await openError(image),
    { constructor: FormatError, message: /inode count 20000 is not 2 groups of \d+ inodes/ },
    'inode count that does not match the groups',
  );

  await fresh();
  await debugfsWrite(image, 'ssv log_block_size 9');
  t.match(
    await openError(image),
    { constructor: FormatError, message: /beyond the 64 KiB maximum/ },
    'impossible block size',
  );

  await fresh();
  t.match(
    await openError(image, 200 * MiB),
    { constructor: FormatError, message: /do not fit in the 209715200-byte volume/ },
    'a volume smaller than the filesystem',
  );

  await fresh();
  await debugfsWrite(image, 'set_bg 1 block_bitmap 9999999', 'set_bg 1 checksum calc');
  t.match(
    await openError(image),
    { constructor: FormatError, message: /group descriptor 1 at byte 4160: block bitmap at block 9999999 is outside/ },
    'bitmap location out of range',
  );

  await fresh();
  await debugfsWrite(image, 'set_bg 1 inode_table 1', 'set_bg 1 checksum calc');
  t.match(
    await openError(image),
    { constructor: FormatError, message: /group descriptor 1 at byte 4160: inode table at blocks 1-/ },
    'inode table over the descriptor table',
  );

  await fresh();
  await patch(image, 4096 + 64 + 0x0e, Buffer.from([0x12]));
  t.match(
    await openError(image),
    { constructor: FormatError, message: /group descriptor 1 at byte 4160: checksum 0x[0-9a-f]{4} does not match/ },
    'bad descriptor checksum',
  );

  // Without checksums the location checks still hold.
  const ext2 = await makeExtImage(t, 'ext2', 256 * MiB, ['-b', '4096']);
  await patch(ext2, 4096 + 32 + 8, Buffer.from([0xff, 0xff, 0xff, 0x0f]));
  t.match(
    await openError(ext2),
    { constructor: FormatError, message: /group descriptor 1 at byte 4128: inode table at blocks 268435455-/ },
    'ext2: inode table out of range',
  );
  await fs.rm(image);
});

t.test('a damaged directory block, inode or extent tree names the path', async (t) => {
  const image = await makeExtImage(t, 'ext4', 128 * MiB, ['-b', '4096']);
  await withMounted(t, image, async (root) => {
    for (const name of ['dir/victim', 'dir/other', 'dir2/sub/file', 'dir3/extents']) {
      await fs.mkdir(`${root}/${name.slice(0, name.lastIndexOf('/'))}`, { recursive: true });
      await fs.writeFile(`${root}/${name}`, patternBytes(name.length, 10_000));
    }
  });

  const directoryImage = `${image}.dir`;
  await fs.copyFile(image, directoryImage);
  const directoryBlock = await firstBlock(directoryImage, '/dir2/sub');
  await patch(directoryImage, directoryBlock * 4096 + 30, Buffer.alloc(16, 0xaa));
  const directoryTree = await (await extFilesystem.open(await openReader(t, directoryImage))).files!();
  await t.rejects(
    directoryTree.lookup('/dir2/sub/file'),
    {
      constructor: FormatError,
      message:
        /resolving \/dir2\/sub\/file: \/dir2\/sub \(inode \d+\): directory block 0 \(block \d+ at byte \d+\): checksum/,
    },
    'lookup through a corrupt directory block',
  );
  const sub = await directoryTree.lookup('/dir2/sub');
  await t.rejects(
    directoryTree.readdir(sub),
    { constructor: FormatError, message: /\/dir2\/sub \(inode \d+\): directory block 0/ },
    'readdir of the corrupt directory',
  );
  t.equal((await directoryTree.readdir(await directoryTree.lookup('/dir'))).length, 2, 'other directories still read');

  const inodeImage = `${image}.inode`;
  await fs.copyFile(image, inodeImage);
  const victim = await inodeOffset(inodeImage, '/dir/victim', 4096);
  await patch(inodeImage, victim.offset + 0x10, Buffer.from([1, 2, 3, 4, 5]));
  const inodeTree = await (await extFilesystem.open(await openReader(t, inodeImage))).files!();
  await t.rejects(
    inodeTree.lookup('/dir/victim'),
    {
      constructor: FormatError,
      message: new RegExp(
        `resolving /dir/victim: /dir/victim \\(inode ${victim.inode}\\): inode ${victim.inode} at byte ${victim.offset}: checksum`,
      ),
    },
    'lookup of a corrupt inode',
  );
  t.equal((await inodeTree.lookup('/dir/other')).stat.size, 10_000, 'its neighbour still reads');

  // debugfs rewrites the inode checksum, so the damage reaches the extent parser.
  const extentImage = `${image}.extent`;
  await fs.copyFile(image, extentImage);
  await debugfsWrite(extentImage, 'sif /dir3/extents block[0] 0x1234');
  const extentTree = await (await extFilesystem.open(await openReader(t, extentImage))).files!();
  const broken = await extentTree.lookup('/dir3/extents');
  await t.rejects(
    extentTree.read(broken, 0, 100),
    {
      constructor: FormatError,
      message: /\/dir3\/extents \(inode \d+\): inode \d+ at byte \d+: extent tree root: bad extent header magic 0x1234/,
    },
    'read of a file with a corrupt extent header',
  );

  // ext2: no checksums, so the structure checks must catch it.
  const ext2 = await makeExtImage(t, 'ext2', 64 * MiB, ['-b', '1024']);
  await withMounted(t, ext2, async (root) => {
    await fs.mkdir(`${root}/dir`);
    await fs.writeFile(`${root}/dir/file`, 'x');
  });
  const ext2Block = await firstBlock(ext2, '/dir');
  await patch(ext2, ext2Block * 1024 + 4, Buffer.from([3, 0]));
  const ext2Tree = await (await extFilesystem.open(await openReader(t, ext2))).files!();
  await t.rejects(
    ext2Tree.lookup('/dir/file'),
    {
      constructor: FormatError,
      message:
        /\/dir \(inode \d+\): directory block 0 \(block \d+ at byte \d+\): entry at offset 0: record length 3 is too small/,
    },
    'ext2: bad record length',
  );
});

t.test('an ext2 inode with no file type names the path', async (t) => {
  const ext2 = await makeExtImage(t, 'ext2', 64 * MiB, ['-b', '1024']);
  await withMounted(t, ext2, async (root) => {
    await fs.mkdir(`${root}/dir`);
    await fs.writeFile(`${root}/dir/typeless`, 'y');
  });
  const typeless = await inodeOffset(ext2, '/dir/typeless', 1024);
  await patch(ext2, typeless.offset, Buffer.from([0, 0]));
  const tree = await (await extFilesystem.open(await openReader(t, ext2))).files!();
  await t.rejects(tree.lookup('/dir/typeless'), {
    constructor: FormatError,
    message: new RegExp(
      `/dir/typeless \\(inode ${typeless.inode}\\): inode ${typeless.inode} at byte ${typeless.offset}: mode 0o0 is no known file type`,
    ),
  });
});

/**
 * Byte ranges worth damaging: every inode in use, every directory block, and the
 * superblock and descriptor table (from dumpe2fs and a walk of the pristine copy).
 */
async function metadataTargets(image: string, pristine: Buffer): Promise<[number, number][]> {
  const dump = await run('dumpe2fs', [image]);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(dump)![1]);
  const blockSize = field('Block size');
  const inodeSize = field('Inode size');
  const inodesPerGroup = field('Inodes per group');
  const tables = [...dump.matchAll(/Inode table at (\d+)-/g)].map((match) => Number(match[1]));
  const targets: [number, number][] = [[1024, 2048]];
  const tree = await (await extFilesystem.open(new MemoryBlockReader(pristine, 'pristine'))).files!();
  const walk = async (path: string) => {
    const node = await tree.lookup(path);
    const group = Math.floor((node.inode - 1) / inodesPerGroup);
    const offset = tables[group]! * blockSize + ((node.inode - 1) % inodesPerGroup) * inodeSize;
    // Inodes weigh three times as much as blocks: they hold most of the structure.
    for (let k = 0; k < 3; k++) targets.push([offset, offset + inodeSize]);
    if (node.stat.type !== 'directory') return;
    for (const block of (await run('debugfs', ['-R', `blocks ${path}`, image])).trim().split(/\s+/).filter(Boolean))
      targets.push([Number(block) * blockSize, (Number(block) + 1) * blockSize]);
    for (const entry of await tree.readdir(node)) await walk(path === '/' ? `/${entry.name}` : `${path}/${entry.name}`);
  };
  await walk('/');
  return targets;
}

/** Visit everything reachable (bounded), calling every FileTree method; return the errors met. */
async function exercise(tree: FileTree): Promise<unknown[]> {
  const errors: unknown[] = [];
  let budget = 3000;
  const visit = async (path: string, depth: number) => {
    if (--budget < 0 || depth > 20) return;
    let node: FileNode;
    try {
      node = await tree.lookup(path);
    } catch (error) {
      errors.push(error);
      return;
    }
    const attempt = async (work: () => Promise<unknown>) => {
      try {
        await work();
      } catch (error) {
        errors.push(error);
      }
    };
    await attempt(() => tree.xattrs(node));
    await attempt(() => tree.dataRanges!(node));
    if (node.stat.type === 'file') await attempt(() => tree.read(node, 0, Math.min(node.stat.size, MiB)));
    if (node.stat.type === 'symlink') await attempt(() => tree.readlink(node));
    if (node.stat.type === 'directory') {
      try {
        for (const entry of await tree.readdir(node))
          await visit(path === '/' ? `/${entry.name}` : `${path}/${entry.name}`, depth + 1);
      } catch (error) {
        errors.push(error);
      }
    }
  };
  await visit('/', 0);
  return errors;
}

const ROUNDS = 80;

t.test('random damage to metadata gives only FormatError or NotFoundError', async (t) => {
  for (const [type, options] of [
    ['ext4', ['-O', '^metadata_csum', '-b', '1024']],
    ['ext2', ['-b', '1024']],
    ['ext4', ['-O', 'inline_data', '-b', '4096']],
  ] as const) {
    const image = await makeExtImage(t, type, 24 * MiB, [...options]);
    await withMounted(t, image, async (root) => {
      for (let directory = 0; directory < 6; directory++) {
        await fs.mkdir(`${root}/d${directory}/sub`, { recursive: true });
        for (let file = 0; file < 25; file++)
          await fs.writeFile(`${root}/d${directory}/f${file}`, patternBytes(file, file * 150));
        await fs.symlink(`${'long/'.repeat(20)}target`, `${root}/d${directory}/sub/link`);
        await fs.writeFile(`${root}/d${directory}/sub/holes`, Buffer.alloc(0));
        const handle = await fs.open(`${root}/d${directory}/sub/holes`, 'r+');
        for (let k = 0; k < 20; k++) await handle.write(patternBytes(k, 1024), 0, 1024, k * 9000);
        await handle.close();
      }
      await run('setfattr', ['-n', 'user.a', '-v', 'b', `${root}/d0/f1`]);
    });
    const pristine = await fs.readFile(image);
    const targets = await metadataTargets(image, pristine);
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 0x1_0000_0000;
    };
    const unexpected: string[] = [];
    let formatErrors = 0;
    const started = performance.now();
    // One working copy, damaged and repaired each round (fresh large buffers are slow to allocate).
    const damaged = Buffer.from(pristine);
    const touched: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const position of touched.splice(0)) damaged[position] = pristine[position]!;
      for (let hit = 0; hit < 3; hit++) {
        const [start, end] = targets[Math.floor(random() * targets.length)]!;
        const position = start + Math.floor(random() * (end - start));
        damaged[position] = Math.floor(random() * 256);
        touched.push(position);
      }
      let errors: unknown[];
      try {
        const tree = await (await extFilesystem.open(new MemoryBlockReader(damaged, `round ${round}`))).files!();
        errors = await exercise(tree);
      } catch (error) {
        errors = [error];
      }
      for (const error of errors) {
        if (error instanceof FormatError) formatErrors++;
        else if (!(error instanceof NotFoundError))
          unexpected.push(`${type} round ${round}: ${(error as Error).stack}`);
      }
    }
    t.comment(
      `${type} ${options.join(' ')}: ${ROUNDS} damaged copies walked in ${(performance.now() - started).toFixed(0)} ms`,
    );
    t.same(
      unexpected.slice(0, 5),
      [],
      `${type} ${options.join(' ')}: no error other than FormatError and NotFoundError (${formatErrors} FormatErrors)`,
    );
    t.ok(formatErrors > 0, 'the damage was noticed');
  }
});
