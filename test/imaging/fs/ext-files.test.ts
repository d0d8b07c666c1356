// Read-only file access on a real ext4 filled through the kernel: every path walked
// through our FileTree must match a walk of the same filesystem mounted read-only
// (lstat, readlink, SHA-256 of contents, getfattr), and lookups behave like lstat.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { dataRanges as seekDataRanges } from '../../../imaging/device.js';
import { extFilesystem } from '../../../imaging/fs/ext.js';
import type { RangeList } from '../../../imaging/ranges.js';
import { NotFoundError } from '../../../src/core/errors.js';
import { run } from '../../helpers/disk.js';
import { differences, fileTreeFacts, mountFacts } from '../../helpers/tree-compare.js';
import {
  fillSpecialFiles,
  largePattern,
  makeExtImage,
  MiB,
  openReader,
  patternBytes,
  withMounted,
} from './ext-fixtures.js';

const BLOCK = 4096;

async function fill(root: string): Promise<void> {
  for (let directory = 0; directory < 12; directory++) {
    const where = path.join(root, 'many', `d${directory}`);
    await fsp.mkdir(where, { recursive: true });
    for (let file = 0; file < 100; file++)
      await fsp.writeFile(path.join(where, `f${file}`), patternBytes(directory * 1000 + file, (file * 37) % 3000));
  }
  await fsp.writeFile(path.join(root, 'fifty.bin'), largePattern(50, 50 * MiB));

  // Data, holes, and an unwritten (fallocated) extent that must read as zeros.
  const sparse = path.join(root, 'sparse.bin');
  const handle = await fsp.open(sparse, 'w');
  await handle.truncate(64 * MiB);
  await handle.write(patternBytes(1, 10_000), 0, 10_000, 0);
  await handle.write(patternBytes(2, 100_000), 0, 100_000, 8 * MiB + 123);
  await handle.write(largePattern(3, MiB), 0, MiB, 40 * MiB);
  await handle.close();
  await run('fallocate', ['-o', String(20 * MiB), '-l', String(4 * MiB), sparse]);

  // One block in every two: thousands of extents, so the extent tree is two levels deep.
  const fragmented = await fsp.open(path.join(root, 'fragmented.bin'), 'w');
  for (let index = 0; index < 2000; index++)
    await fragmented.write(patternBytes(index, BLOCK), 0, BLOCK, index * 2 * BLOCK);
  await fragmented.close();

  const hashed = path.join(root, 'htree');
  await fsp.mkdir(hashed);
  for (let index = 0; index < 3000; index++)
    await fsp.writeFile(path.join(hashed, `entry-with-a-longish-name-${index}`), `${index}\n`);

  let deep = path.join(root, 'deep');
  for (let level = 0; level < 40; level++) deep = path.join(deep, `level-${level}`);
  await fsp.mkdir(deep, { recursive: true });
  await fsp.writeFile(path.join(deep, 'bottom.txt'), 'forty levels down\n');
  await fsp.symlink('deep/level-0/level-1', path.join(root, 'into-deep'));

  await fillSpecialFiles(root);
}

t.test('an ext4 filesystem read through FileTree matches the kernel', async (t) => {
  const image = await makeExtImage(t, 'ext4', 512 * MiB, ['-L', 'files-test']);
  let phase = performance.now();
  const lap = (what: string) => {
    t.comment(`${what}: ${(performance.now() - phase).toFixed(0)} ms`);
    phase = performance.now();
  };
  const shape = await withMounted(t, image, async (root) => {
    await fill(root);
    lap('filled through the kernel');
    await run('sync', []);
    const lsattr = await run('lsattr', ['-d', path.join(root, 'htree')]);
    return { htreeIndexed: /I/.test(lsattr.split(' ')[0]!) };
  });
  t.ok(shape.htreeIndexed, 'the 3000-entry directory is hashed (htree)');
  const extents = await run('debugfs', ['-R', 'ex /fragmented.bin', image]);
  const depth = Math.max(...[...extents.matchAll(/^\s*(\d+)\/\s*(\d+)/gm)].map((match) => Number(match[2])));
  t.ok(depth >= 2, `fragmented.bin has a ${depth}-level extent tree`);

  const reader = await openReader(t, image);
  const opened = await extFilesystem.open(reader);
  t.equal(opened.info.label, 'files-test');
  const tree = await opened.files!();

  await withMounted(
    t,
    image,
    async (root) => {
      // Asked before anything reads the files: once an unwritten extent's zero pages are
      // in the page cache, SEEK_DATA reports them as data.
      const kernelRanges = new Map<string, RangeList>();
      for (const name of ['/sparse.bin', '/fragmented.bin', '/fifty.bin']) {
        const fd = fs.openSync(path.join(root, name), 'r');
        try {
          kernelRanges.set(name, seekDataRanges(fd, 'file', 0, fs.fstatSync(fd).size));
        } finally {
          fs.closeSync(fd);
        }
      }
      lap('mounted read-only');
      const expected = await mountFacts(root, { xattrs: true });
      lap(`walked ${expected.size} paths through the kernel`);
      const { files: actual, problems } = await fileTreeFacts(tree, { xattrs: true });
      lap(`walked ${actual.size} paths through FileTree`);
      t.ok(expected.size > 4000, `the kernel sees ${expected.size} paths`);
      // The comparison covers what it claims to: the kernel's side has these.
      t.ok(expected.get('/special/with-acl')!.xattrs?.['system.posix_acl_access'], 'an access ACL is compared');
      t.ok(expected.get('/special/acl-dir')!.xattrs?.['system.posix_acl_default'], 'a default ACL is compared');
      t.ok(expected.get('/special/with-xattrs')!.xattrs?.['user.large'], 'a large xattr is compared');
      t.equal(
        expected.get('/special/timestamps/nanoseconds')!.mtimeNs,
        '1614834367123456789',
        'nanosecond times are compared',
      );
      t.ok(expected.get('/special/big-numbers')!.rdev, 'device numbers are compared');
      const diff = differences(expected, actual);
      t.same(diff.slice(0, 30), [], `all ${expected.size} paths agree (${diff.length} differences)`);
      t.same(problems.slice(0, 30), [], 'readdir and lookup agree on types and inodes');

      // Holes and unwritten extents are left out of dataRanges, like SEEK_DATA/SEEK_HOLE.
      for (const [name, kernel] of kernelRanges) {
        const node = await tree.lookup(name);
        t.same((await tree.dataRanges!(node)).ranges, kernel.ranges, `${name}: data ranges match SEEK_DATA/SEEK_HOLE`);
      }
    },
    { readOnly: true },
  );

  // Reads at odd offsets and lengths, across holes and extent boundaries.
  const sparse = await tree.lookup('/sparse.bin');
  const whole = Buffer.alloc(64 * MiB);
  patternBytes(1, 10_000).copy(whole, 0);
  patternBytes(2, 100_000).copy(whole, 8 * MiB + 123);
  largePattern(3, MiB).copy(whole, 40 * MiB);
  for (const [offset, length] of [
    [0, 1],
    [9_999, 2],
    [8 * MiB, 200_000],
    [20 * MiB - 7, 4 * MiB + 14],
    [40 * MiB - 1, MiB + 2],
    [64 * MiB - 10, 100],
  ] as const) {
    const bytes = await tree.read(sparse, offset, length);
    t.ok(
      bytes.equals(whole.subarray(offset, Math.min(offset + length, whole.length))),
      `sparse.bin: ${length} bytes at ${offset}`,
    );
  }
  t.equal((await tree.read(sparse, 64 * MiB, 10)).length, 0, 'a read at the end of the file is empty');

  // lookup has lstat semantics: a final symlink is not followed, intermediate ones are.
  const link = await tree.lookup('/special/fast-symlink');
  t.equal(link.stat.type, 'symlink');
  t.equal(await tree.readlink(link), 'short-target');
  const through = await tree.lookup('/into-deep/level-2/../level-2/level-3');
  t.equal(through.stat.type, 'directory', 'a path through a symlink and .. resolves');
  t.equal(through.path, '/into-deep/level-2/../level-2/level-3', 'the node keeps the path as looked up');
  const absolute = await tree.lookup('/special/absolute-symlink');
  t.equal(await tree.readlink(absolute), '/special/hardlink-a');
  const hardlink = await tree.lookup('/special/elsewhere/hardlink-c');
  t.equal(
    hardlink.inode,
    (await tree.lookup('//special/./hardlink-a')).inode,
    'hard links share an inode, extra slashes and dots are ignored',
  );
  await t.rejects(tree.lookup('/special/no-such-file'), NotFoundError, 'a missing name is NotFoundError');
  await t.rejects(tree.lookup('/fifty.bin/inside'), NotFoundError, 'a file is not a directory');
  await t.rejects(
    tree.lookup('/special/no-such-file'),
    { message: /\/special\/no-such-file/ },
    'the error names the path',
  );
});
