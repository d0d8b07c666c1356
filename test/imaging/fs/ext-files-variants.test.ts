// File access on the other on-disk shapes: ext2 with 1 KiB blocks (direct, single,
// double and triple indirect blocks, holes among them) and ext4 with inline_data
// (file and directory contents inside the inode) and ea_inode (huge xattr values).
import fsp from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { extFilesystem } from '../../../imaging/fs/ext.js';
import { run } from '../../helpers/disk.js';
import { differences, type FactsByPath, fileTreeFacts, mountFacts } from '../../helpers/tree-compare.js';
import {
  fillSpecialFiles,
  largePattern,
  makeExtImage,
  MiB,
  openReader,
  patternBytes,
  withMounted,
} from './ext-fixtures.js';

async function compareWithKernel(t: Test, image: string): Promise<FactsByPath> {
  const reader = await openReader(t, image);
  const tree = await (await extFilesystem.open(reader)).files!();
  return withMounted(
    t,
    image,
    async (root) => {
      const expected = await mountFacts(root, { xattrs: true });
      const { files: actual, problems } = await fileTreeFacts(tree, { xattrs: true });
      const diff = differences(expected, actual);
      t.same(diff.slice(0, 30), [], `all ${expected.size} paths agree with the kernel (${diff.length} differences)`);
      t.same(problems.slice(0, 30), [], 'readdir and lookup agree on types and inodes');
      return expected;
    },
    { readOnly: true },
  );
}

t.test('ext2 with 1 KiB blocks: indirect block maps up to triple indirect', async (t) => {
  const image = await makeExtImage(t, 'ext2', 256 * MiB, ['-b', '1024']);
  await withMounted(t, image, async (root) => {
    // 12 direct + 256 single + 65536 double blocks end at 64.3 MiB: 70 MiB reaches triple indirect.
    await fsp.writeFile(path.join(root, 'triple.bin'), largePattern(70, 70 * MiB + 333));
    await fsp.writeFile(path.join(root, 'double.bin'), largePattern(5, 5 * MiB));
    const sparse = await fsp.open(path.join(root, 'sparse.bin'), 'w');
    await sparse.write(patternBytes(1, 5000), 0, 5000, 3000);
    await sparse.write(patternBytes(2, 3000), 0, 3000, 2 * MiB);
    await sparse.write(patternBytes(3, 70_000), 0, 70_000, 100 * MiB + 17);
    await sparse.close();
    for (let index = 0; index < 300; index++)
      await fsp.writeFile(path.join(root, `small-${index}`), patternBytes(index, index * 13));
    await fillSpecialFiles(root, { largeXattrBytes: 700 });
  });
  const debugfs = await run('debugfs', ['-R', 'stat /triple.bin', image]);
  t.match(debugfs, /\(TIND\)/, 'triple.bin uses a triple indirect block');
  await compareWithKernel(t, image);

  const reader = await openReader(t, image);
  const opened = await extFilesystem.open(reader);
  t.equal(opened.info.type, 'ext2');
  const tree = await opened.files!();
  const sparse = await tree.lookup('/sparse.bin');
  t.same(
    (await tree.dataRanges!(sparse)).ranges,
    [
      [2048, 8192],
      [2 * MiB, 2 * MiB + 3072],
      [100 * MiB, 100 * MiB + 17 + 70_000],
    ],
    'the sparse file has three runs of data blocks',
  );
});

t.test('ext4 with inline_data and ea_inode', async (t) => {
  const image = await makeExtImage(t, 'ext4', 128 * MiB, ['-O', 'inline_data,ea_inode']);
  await withMounted(t, image, async (root) => {
    for (const size of [0, 1, 59, 60, 61, 100, 150, 400])
      await fsp.writeFile(path.join(root, `inline-${size}`), patternBytes(size, size));
    await fsp.mkdir(path.join(root, 'tiny-dir'));
    await fsp.writeFile(path.join(root, 'tiny-dir', 'a'), 'a');
    // Enough entries to continue into system.data, then enough to leave the inode.
    await fsp.mkdir(path.join(root, 'spilling-dir'));
    for (let index = 0; index < 6; index++)
      await fsp.writeFile(path.join(root, 'spilling-dir', `entry-${index}`), `${index}`);
    await fsp.mkdir(path.join(root, 'block-dir'));
    for (let index = 0; index < 80; index++)
      await fsp.writeFile(path.join(root, 'block-dir', `entry-${index}`), `${index}`);
    await fsp.symlink('t'.repeat(100), path.join(root, 'inline-symlink'));
    await fsp.writeFile(path.join(root, 'huge-xattr'), 'value lives in its own inode\n');
    await run('setfattr', [
      '-n',
      'user.huge',
      '-v',
      `0x${patternBytes(9, 12000).toString('hex')}`,
      path.join(root, 'huge-xattr'),
    ]);
    await fillSpecialFiles(root);
  });
  const stat = await run('debugfs', ['-R', 'stat /spilling-dir', image]);
  t.match(stat, /Size of inline data: \d+/, 'spilling-dir is an inline directory');
  const stat100 = await run('debugfs', ['-R', 'stat /inline-100', image]);
  t.match(stat100, /Size of inline data: 100/, 'inline-100 keeps 100 bytes inline (i_block and system.data)');
  const expected = await compareWithKernel(t, image);
  t.equal(
    expected.get('/huge-xattr')!.xattrs?.['user.huge']?.length,
    24000,
    'a 12000-byte xattr (larger than a block: in its own inode) is compared',
  );
});
