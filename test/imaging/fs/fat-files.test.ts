// File access on FAT12, FAT16 and FAT32: a tree written with mtools (thousands of small
// files, a 20 MiB file, a fragmented file, 30-level deep directories, long and Unicode
// names, names differing only in case, a 1500-entry directory) is walked with our FileTree
// and compared with what mtools extracts: names, types, sizes, mtimes and SHA-256.
import fs from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { NotFoundError, UsageError } from '../../../src/core/errors.js';
import { fatFilesystem } from '../../../imaging/fs/fat.js';
import type { FileNode, FileTree } from '../../../imaging/fs/filesystem.js';
import { Prng, textLike, writeMixedFile } from '../../helpers/content.js';
import { MiB, readAt } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  fsckFat,
  makeFatImage,
  mcopyInto,
  mcopyOut,
  mtools,
  openReader,
  patch,
  walkLocal,
  walkTree,
  type MkfsOptions,
  type Seen,
} from './fat-fixtures.js';

const BASE_TIME_S = Date.UTC(2001, 8, 9, 1, 46, 41) / 1000;

/** Unicode and awkward names, all valid on FAT (the Basic Multilingual Plane: mtools writes no surrogate pairs). */
const AWKWARD_NAMES = [
  'Ünïcödé name with spaces.txt',
  '日本語のファイル名.txt',
  'Ελληνικά και русский.md',
  'with+plus;semi=eq[br],comma.txt',
  'many.dots.in.this.name.tar.gz',
  '.hidden',
  'noextension',
  'x',
  `${'A'.repeat(120)} very long name ${'z'.repeat(100)}.bin`,
  'ends with space and dot é',
];

const CASE_NAMES = ['readme.txt', 'README.TXT', 'Readme.txt', 'readme.TXT', 'README.txt'];

interface TreeShape {
  smallFiles: number;
  wideFilesWithData: number;
}

async function buildSource(root: string, shape: TreeShape, seed: number): Promise<void> {
  const prng = new Prng(seed);
  let clock = 0;
  const stamp = async (file: string) => {
    clock++;
    const seconds = BASE_TIME_S + clock * 7777;
    await fs.utimes(file, seconds, seconds);
  };
  const write = async (relative: string, bytes: Buffer) => {
    const file = path.join(root, relative);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, bytes);
    await stamp(file);
  };
  for (let index = 0; index < shape.smallFiles; index++) {
    const size = index % 23 === 0 ? 0 : prng.next() % 4000;
    await write(`many/group${String(index % 20).padStart(2, '0')}/f${index}.txt`, textLike(prng, size));
  }
  for (let index = 0; index < 1500; index++) {
    const withData = index % Math.ceil(1500 / shape.wideFilesWithData) === 0;
    // A distinct start for every name: mtools numbers clashing short names (~1, ~2, ...) in quadratic time.
    await write(
      `wide/w${10000 + index} in a wide directory.dat`,
      withData ? textLike(prng, 100 + (index % 900)) : Buffer.alloc(0),
    );
  }
  await fs.mkdir(path.join(root, 'big'), { recursive: true });
  await writeMixedFile(path.join(root, 'big', 'twenty.bin'), 20 * MiB, seed);
  await stamp(path.join(root, 'big', 'twenty.bin'));
  let deep = 'deep';
  for (let level = 1; level <= 30; level++) deep += `/level${String(level).padStart(2, '0')}`;
  await write(`${deep}/leaf.txt`, Buffer.from('thirty levels down\n'));
  for (const name of AWKWARD_NAMES) await write(`names/${name}`, textLike(prng, 50 + name.length));
  await write('names/readonly.txt', Buffer.from('do not change me\n'));
  for (const [index, name] of CASE_NAMES.entries()) await write(`case/d${index}/${name}`, Buffer.from(`${name}\n`));
  await write('case/same/ABC.TXT', Buffer.from('upper\n'));
  await write('case/same/abc', Buffer.from('lower\n'));
  // Directory times last, once nothing more is written inside them.
  const stampDirectories = async (directory: string): Promise<void> => {
    for (const dirent of await fs.readdir(directory, { withFileTypes: true })) {
      if (dirent.isDirectory()) await stampDirectories(path.join(directory, dirent.name));
    }
    if (directory !== root) await stamp(directory);
  };
  await stampDirectories(root);
}

/** A file whose cluster chain is not contiguous: written into the holes left by deleted files. */
async function writeFragmentedFile(image: string, directory: string, clusterSize: number): Promise<string> {
  const fillers = path.join(directory, 'fillers');
  await fs.mkdir(fillers);
  const names: string[] = [];
  for (let index = 0; index < 40; index++) {
    names.push(`filler${index}`);
    await fs.writeFile(path.join(fillers, `filler${index}`), Buffer.alloc(clusterSize, index));
  }
  await mtools('mmd', ['-i', image, '::/frag']);
  await mcopyInto(image, fillers, '::/frag/');
  await mtools('mdel', ['-i', image, ...names.filter((_, index) => index % 2 === 0).map((name) => `::/frag/${name}`)]);
  const bootSector = await readAt(image, 0, 512);
  if (bootSector.readUInt16LE(22) === 0) {
    // On FAT32 mtools allocates after the FSInfo "next free" hint; "unknown" sends it back to the holes.
    await patch(image, bootSector.readUInt16LE(48) * 512 + 492, Buffer.from([0xff, 0xff, 0xff, 0xff]));
  }
  const fragmented = path.join(directory, 'fragmented.bin');
  await writeMixedFile(fragmented, 30 * clusterSize + 1234, 99);
  await mtools('mcopy', ['-m', '-i', image, fragmented, '::/frag/fragmented.bin']);
  const { stdout } = await mtools('mshowfat', ['-i', image, '::/frag/fragmented.bin']);
  return stdout;
}

function differences(actual: Map<string, Seen>, expected: Map<string, Seen>, compareDirectoryTimes: boolean): string[] {
  const problems: string[] = [];
  for (const [key, want] of expected) {
    const got = actual.get(key);
    if (!got) problems.push(`missing ${key}`);
    else {
      const comparable = { ...got, mtimeMs: got.type === 'directory' && !compareDirectoryTimes ? 0 : got.mtimeMs };
      const wanted = { ...want, mtimeMs: want.type === 'directory' && !compareDirectoryTimes ? 0 : want.mtimeMs };
      if (JSON.stringify(comparable) !== JSON.stringify(wanted))
        problems.push(`${key}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    }
  }
  for (const key of actual.keys()) if (!expected.has(key)) problems.push(`unexpected ${key}`);
  return problems.slice(0, 20);
}

const volumes: (MkfsOptions & { name: string; shape: TreeShape; size: number })[] = [
  // FAT12 addresses at most 4084 clusters: big clusters and a smaller tree.
  {
    name: 'fat12',
    fatType: 12,
    size: 60 * MiB,
    sectorsPerCluster: 32,
    shape: { smallFiles: 1000, wideFilesWithData: 300 },
  },
  {
    name: 'fat16',
    fatType: 16,
    size: 128 * MiB,
    sectorsPerCluster: 8,
    shape: { smallFiles: 3000, wideFilesWithData: 1500 },
  },
  {
    name: 'fat32',
    fatType: 32,
    size: 256 * MiB,
    sectorsPerCluster: 1,
    shape: { smallFiles: 3000, wideFilesWithData: 1500 },
  },
];

for (const options of volumes) {
  t.test(`${options.name}: the FileTree shows what mtools extracts`, async (t) => {
    const directory = await tempDir(t);
    const image = await makeFatImage(path.join(directory, `${options.name}.img`), options);
    const clusterSize = 512 * options.sectorsPerCluster!;
    const chain = await writeFragmentedFile(image, directory, clusterSize);
    t.ok(
      (chain.match(/</g) ?? []).length > 5,
      `the fragmented file has several cluster runs (mshowfat: ${chain.trim()})`,
    );
    const source = path.join(directory, 'source');
    await buildSource(source, options.shape, options.fatType);
    await mcopyInto(image, source);
    await mtools('mattrib', ['-i', image, '+r', '::/names/readonly.txt']);
    const fsck = await fsckFat(image);
    t.ok(fsck.clean, `fsck.fat -n is clean (${fsck.usedClusters}/${fsck.clusters} clusters used)`);

    const extracted = path.join(directory, 'extracted');
    await fs.mkdir(extracted);
    await mcopyOut(image, extracted);
    const expected = await walkLocal(extracted);
    t.ok(expected.size > options.shape.smallFiles + 1500 + 30, `mtools extracted ${expected.size} entries`);

    const volume = await fatFilesystem.open(await openReader(t, image));
    const tree = await volume.files!();
    const started = Date.now();
    const seen = await walkTree(tree);
    t.comment(`walked and hashed ${seen.size} entries in ${Date.now() - started} ms`);
    t.same(differences(seen, expected, true), [], 'names, types, sizes, mtimes and SHA-256 all match mtools');

    // The source tree agrees too (except times, which FAT keeps to two seconds).
    const original = await walkLocal(source);
    const withoutTimes = (map: Map<string, Seen>) =>
      new Map(
        [...map].filter(([key]) => !key.startsWith('/frag')).map(([key, value]) => [key, { ...value, mtimeMs: 0 }]),
      );
    t.same(
      differences(withoutTimes(seen), withoutTimes(original), true),
      [],
      'and match the files that were copied in',
    );
    const leaf = seen.get(
      '/deep/level01/level02/level03/level04/level05/level06/level07/level08/level09/level10/level11/level12/level13/level14/level15/level16/level17/level18/level19/level20/level21/level22/level23/level24/level25/level26/level27/level28/level29/level30/leaf.txt',
    );
    t.equal(leaf?.size, 19, 'the leaf 30 levels down');
    t.equal((await tree.readdir(await tree.lookup('/wide'))).length, 1500, 'the wide directory lists 1500 entries');

    await checkReads(t, tree, path.join(extracted, 'big', 'twenty.bin'), '/big/twenty.bin', clusterSize);
    await checkReads(t, tree, path.join(extracted, 'frag', 'fragmented.bin'), '/frag/fragmented.bin', clusterSize);
    await checkNames(t, tree, image);
    await checkStat(t, tree, image);
  });
}

async function checkReads(
  t: Test,
  tree: FileTree,
  extractedFile: string,
  treePath: string,
  clusterSize: number,
): Promise<void> {
  const node = await tree.lookup(treePath);
  const size = node.stat.size;
  const probes: [number, number][] = [
    [0, 1],
    [1, clusterSize],
    [clusterSize - 1, 2],
    [clusterSize, clusterSize * 3 + 7],
    [Math.floor(size / 2) + 123, 1 << 20],
    [size - 10, 100],
    [size, 10],
    [size + 5, 10],
    [17, 0],
  ];
  for (const [offset, length] of probes) {
    const want =
      offset >= size
        ? Buffer.alloc(0)
        : await readAt(extractedFile, offset, Math.max(0, Math.min(length, size - offset)));
    const got = await tree.read(node, offset, length);
    t.ok(got.equals(want), `${treePath}: ${length} bytes at ${offset} (${got.length} returned)`);
  }
}

async function checkNames(t: Test, tree: FileTree, image: string): Promise<void> {
  // The NT lowercase flags in byte 12 of the short entry (the inode is the entry's offset / 32).
  const flags = new Map<string, number>();
  for (const [index, name] of CASE_NAMES.entries()) {
    const node = await tree.lookup(`/case/d${index}/${name}`);
    t.equal(node.path, `/case/d${index}/${name}`);
    flags.set(name, (await readAt(image, node.inode * 32, 32))[12]!);
  }
  t.same(
    Object.fromEntries(flags),
    { 'readme.txt': 0x18, 'README.TXT': 0, 'Readme.txt': 0, 'readme.TXT': 0x08, 'README.txt': 0x10 },
    'mtools stored all four lowercase flag combinations (Readme.txt needs a long name)',
  );

  // Lookups are case-insensitive, as on FAT itself, and short aliases resolve.
  const exact = await tree.lookup('/case/d2/Readme.txt');
  t.equal((await tree.lookup('/CASE/D2/README.TXT')).inode, exact.inode, 'case-insensitive lookup');
  const unicode = await tree.lookup('/names/Ünïcödé name with spaces.txt');
  t.equal(
    (await tree.lookup('/names/ÜNÏCÖD~1.TXT')).inode,
    unicode.inode,
    'short alias lookup (code page 850 short name)',
  );
  t.equal((await tree.lookup('/names/ünïcöd~1.txt')).inode, unicode.inode, 'short alias lookup in lower case');
  t.not(
    (await tree.lookup('/case/same/ABC.TXT')).inode,
    (await tree.lookup('/case/same/abc')).inode,
    'ABC.TXT and abc are different files',
  );
  await t.rejects(tree.lookup('/names/nothing here'), NotFoundError);
  await t.rejects(tree.lookup('/big/twenty.bin/below'), NotFoundError);
  await t.rejects(tree.lookup('relative/path'), UsageError);
  t.equal(
    (await tree.lookup('/deep/./level01/../level01')).inode,
    (await tree.lookup('/deep/level01')).inode,
    '. and .. components',
  );
}

async function checkStat(t: Test, tree: FileTree, image: string): Promise<void> {
  const root = await tree.lookup('/');
  t.match(root.stat, { type: 'directory', mode: 0o755, uid: 0, gid: 0, nlink: 1 });
  const entries = await tree.readdir(await tree.lookup('/names'));
  const { stdout } = await mtools('mattrib', ['-i', image, '::/names/*']);
  // mattrib prints the attribute letters (A, S, H, R) before the name.
  const readOnly = new Set(
    stdout
      .split('\n')
      .filter((line) => line.slice(0, line.indexOf('::')).includes('R'))
      .map((line) => line.slice(line.indexOf('::/names/') + 9)),
  );
  t.same([...readOnly], ['readonly.txt'], 'mattrib shows one read-only file');
  for (const entry of entries) {
    const node = await tree.lookup(`/names/${entry.name}`);
    t.equal(node.inode, entry.inode, `${entry.name}: readdir and lookup agree on the inode`);
    t.equal(node.stat.mode, readOnly.has(entry.name) ? 0o444 : 0o644, `${entry.name}: mode`);
    t.match(node.stat, { uid: 0, gid: 0, nlink: 1, type: 'file' });
    t.equal(node.stat.ctimeMs, node.stat.mtimeMs);
    t.equal(node.stat.atimeMs % 86_400_000, 0, `${entry.name}: FAT keeps only the access date`);
    t.same(await tree.xattrs(node), new Map(), `${entry.name}: no extended attributes`);
  }
  const directoryNode = await tree.lookup('/deep/level01');
  t.equal(directoryNode.stat.mode, 0o755);
  await t.rejects(tree.readlink(directoryNode), UsageError);
  await t.rejects(tree.read(directoryNode, 0, 10), UsageError);
  await t.rejects(tree.readdir(await tree.lookup('/names/x')), UsageError);
  const inodes: number[] = [];
  const collect = async (node: FileNode): Promise<void> => {
    for (const entry of await tree.readdir(node)) {
      inodes.push(entry.inode);
      if (entry.type === 'directory')
        await collect(await tree.lookup(`${node.path === '/' ? '' : node.path}/${entry.name}`));
    }
  };
  await collect(root);
  t.equal(new Set(inodes).size, inodes.length, `the ${inodes.length} inode numbers are unique`);
}
