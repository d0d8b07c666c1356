// Read-only file access on NTFS, compared with ntfs-3g itself: a volume is filled
// through an ntfs-3g mount, unmounted, walked with the module's FileTree and with a
// read-only ntfs-3g mount, and every name, type, size, time, link target, inode,
// device number, named stream and SHA-256 of contents must agree.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Prng, textLike, writeLargeDistinctFile } from '../../helpers/content.js';
import { MiB, run } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  compareWalks,
  makeNtfsImage,
  mountXattrs,
  openNtfs,
  setXattr,
  walkMount,
  walkTree,
  withNtfsMount,
} from './ntfs-helpers.js';

const UNICODE_NAMES = [
  'Grüße aus Köln.txt',
  '日本語のファイル名.txt',
  'emoji 😀 and 🎉.txt',
  'Ελληνικά',
  'עברית.md',
  'ﬁ ligature + combining é.txt',
  'tab\tand;semicolon.txt',
];
const DEEP_LEVELS = 30;
const BIG_DIRECTORY_ENTRIES = 2000;
const LINKS_TO_HUB = 40;

async function fill(root: string): Promise<void> {
  const prng = new Prng(365);
  // A few thousand small files: resident (tiny) and non-resident $DATA.
  for (let directory = 0; directory < 10; directory++) {
    const directoryPath = path.join(root, 'small', `d${directory}`);
    await fs.mkdir(directoryPath, { recursive: true });
    for (let index = 0; index < 300; index++) {
      await fs.writeFile(
        path.join(directoryPath, `file-${index}.txt`),
        textLike(prng, (index * 37 + directory * 101) % 6000),
      );
    }
  }
  await writeLargeDistinctFile(path.join(root, 'big.bin'), 50 * MiB, 7);

  // A sparse file: data at the start, in the middle and at the end, holes between.
  const sparse = await fs.open(path.join(root, 'sparse.bin'), 'w');
  await sparse.write(Buffer.from('head of the sparse file'), 0, undefined, 0);
  await sparse.write(textLike(prng, MiB), 0, undefined, 16 * MiB + 12345);
  await sparse.write(Buffer.from('tail'), 0, undefined, 40 * MiB - 4);
  await sparse.close();

  const many = path.join(root, 'many');
  await fs.mkdir(many);
  for (let index = 0; index < BIG_DIRECTORY_ENTRIES; index++)
    await fs.writeFile(
      path.join(many, `entry-${String(index).padStart(4, '0')}-with-a-longer-name`),
      `entry ${index}\n`,
    );

  let deep = path.join(root, 'deep');
  for (let level = 1; level <= DEEP_LEVELS; level++) deep = path.join(deep, `level-${level}`);
  await fs.mkdir(deep, { recursive: true });
  await fs.writeFile(path.join(deep, 'bottom.txt'), 'at the bottom\n');

  const unicode = path.join(root, 'unicode');
  await fs.mkdir(unicode);
  for (const name of UNICODE_NAMES) await fs.writeFile(path.join(unicode, name), `${name}\n`);
  await fs.mkdir(path.join(unicode, 'Verzeichnis äöü'));
  // Long names with a separate DOS 8.3 name, as Windows makes them: a second $FILE_NAME
  // in the DOS namespace, which is not listed.
  await fs.writeFile(path.join(root, 'A long file name.txt'), 'long\n');
  await setXattr(path.join(root, 'A long file name.txt'), 'system.ntfs_dos_name', Buffer.from('ALONGF~1.TXT'));
  await fs.mkdir(path.join(root, 'A long directory name'));
  await setXattr(path.join(root, 'A long directory name'), 'system.ntfs_dos_name', Buffer.from('ALONGD~1'));

  // Hard links in one and in several directories; 40 links overflow the base record,
  // so the file gets an $ATTRIBUTE_LIST and $FILE_NAMEs in extension records.
  await fs.mkdir(path.join(root, 'links'));
  await fs.mkdir(path.join(root, 'other'));
  await fs.writeFile(path.join(root, 'links', 'original'), textLike(prng, 5000));
  await fs.link(path.join(root, 'links', 'original'), path.join(root, 'links', 'second'));
  await fs.link(path.join(root, 'links', 'original'), path.join(root, 'other', 'third'));
  await fs.writeFile(path.join(root, 'links', 'hub'), 'a file with many names\n');
  for (let index = 0; index < LINKS_TO_HUB; index++) {
    await fs.link(
      path.join(root, 'links', 'hub'),
      path.join(root, 'links', `hub-link-with-a-rather-long-name-${String(index).padStart(3, '0')}`),
    );
  }

  await fs.symlink('links/original', path.join(root, 'link-to-file'));
  await fs.symlink('deep/level-1', path.join(root, 'link-to-directory'));
  await fs.symlink('does/not/exist', path.join(root, 'dangling'));
  await fs.symlink('/etc/hostname', path.join(root, 'absolute'));
  await fs.symlink(`${'very-long-target/'.repeat(30)}end`, path.join(root, 'long-target'));
  await run('mkfifo', [path.join(root, 'fifo')]);
  await run('mknod', [path.join(root, 'null-device'), 'c', '1', '3']);
  await run('mknod', [path.join(root, 'block-device'), 'b', '7', '300']);

  // Named streams, shown by ntfs-3g as user.* extended attributes.
  await fs.writeFile(path.join(root, 'with-streams.txt'), 'main data\n');
  await setXattr(path.join(root, 'with-streams.txt'), 'user.comment', Buffer.from('a short stream'));
  await setXattr(path.join(root, 'with-streams.txt'), 'user.large', textLike(prng, 20000));

  // Compressed files: the directory's "compressed" attribute is inherited by new files.
  const compressed = path.join(root, 'compressed');
  await fs.mkdir(compressed);
  await setXattr(compressed, 'system.ntfs_attrib_be', Buffer.from([0, 0, 0x08, 0x10]));
  await fs.writeFile(path.join(compressed, 'text.txt'), textLike(prng, 300 * 1024 + 77));
  const random = Buffer.alloc(100 * 1024);
  prng.fill(random);
  await fs.writeFile(path.join(compressed, 'random.bin'), random);
  await fs.writeFile(
    path.join(compressed, 'mixed.bin'),
    Buffer.concat([textLike(prng, 70000), Buffer.alloc(200000), random.subarray(0, 5000), textLike(prng, 9000)]),
  );
  await fs.writeFile(path.join(compressed, 'tiny.txt'), 'small enough to stay resident');

  await fs.writeFile(path.join(root, 'empty-file'), '');
  await fs.mkdir(path.join(root, 'empty-directory'));
}

/** `ntfsinfo -F`: which attributes the file has, as ntfs-3g's library sees them. */
async function attributesOf(image: string, file: string): Promise<string> {
  return run('ntfsinfo', ['-F', file, image]);
}

t.test('a filled volume reads like the ntfs-3g mount', async (t) => {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'files.img'), 256 * MiB, ['--label', 'Files']);
  await withNtfsMount(t, image, fill);

  // The volume has what the walk must cover.
  t.match(await attributesOf(image, '/many'), /\$INDEX_ALLOCATION/, 'the big directory has an index allocation');
  t.match(await attributesOf(image, '/links/hub'), /\$ATTRIBUTE_LIST/, 'the many-linked file has an attribute list');
  t.match(
    await attributesOf(image, '/compressed/text.txt'),
    /\$DATA \(0x80\)(?:(?!Dumping attribute)[\s\S])*Attribute flags:\s+0x0001/,
    'text.txt is compressed',
  );
  t.match(
    await attributesOf(image, '/sparse.bin'),
    /\$DATA \(0x80\)(?:(?!Dumping attribute)[\s\S])*Attribute flags:\s+0x8000/,
    'sparse.bin is sparse',
  );
  t.match(await attributesOf(image, '/A long file name.txt'), /Namespace:\s+DOS/, 'a file with a DOS name');

  const { tree } = await openNtfs(t, image);
  const started = performance.now();
  const ours = await walkTree(tree);
  t.comment(
    `FileTree walk of ${ours.files.size} entries with contents: ${(performance.now() - started).toFixed(0)} ms`,
  );
  t.same(ours.problems, [], 'readdir and lookup agree');

  const { theirs, xattrs } = await withNtfsMount(
    t,
    image,
    async (root) => ({ theirs: await walkMount(root), xattrs: await mountXattrs(root) }),
    'ro',
  );
  t.ok(theirs.size > 5000, `the mount shows ${theirs.size} entries`);
  t.same(
    compareWalks(ours.files, theirs),
    [],
    'names, types, sizes, modes, owners, link counts, inodes, times, targets, devices and contents agree',
  );

  const ourXattrs = new Map<string, Map<string, string>>();
  for (const [file, walked] of ours.files) {
    if (walked.type === 'symlink') continue;
    const attributes = await tree.xattrs(await tree.lookup(file));
    if (attributes.size > 0)
      ourXattrs.set(file, new Map([...attributes].map(([name, value]) => [name, value.toString('hex')])));
  }
  t.same(ourXattrs, xattrs, 'named streams are the user.* extended attributes ntfs-3g lists');
  t.equal(xattrs.get('/with-streams.txt')?.size, 2, 'the test file has two streams');

  // Facts that must hold whatever the oracle says.
  const hub = theirs.get('/links/hub')!;
  t.equal(hub.nlink, LINKS_TO_HUB + 1, 'the hub has all its links');
  const hubLinks = [...ours.files].filter(([, walked]) => walked.inode === hub.inode).map(([name]) => name);
  t.equal(hubLinks.length, LINKS_TO_HUB + 1, 'every name of the hub has the same inode');
  t.equal(
    ours.files.get('/other/third')!.inode,
    ours.files.get('/links/original')!.inode,
    'hard links across directories share the inode',
  );
  t.equal(ours.files.get('/link-to-file')!.target, 'links/original');
  t.equal(ours.files.get('/many')!.type, 'directory');
  t.equal(
    [...ours.files.keys()].filter((name) => name.startsWith('/many/')).length,
    BIG_DIRECTORY_ENTRIES,
    'all entries of the big directory',
  );
  for (const name of UNICODE_NAMES) t.ok(ours.files.has(`/unicode/${name}`), `unicode name ${JSON.stringify(name)}`);
  t.notOk(
    [...ours.files.keys()].some((name) => name.startsWith('/$')),
    'no system files in the root listing',
  );

  const bottom = await tree.lookup(
    `/deep/${Array.from({ length: DEEP_LEVELS }, (_, index) => `level-${index + 1}`).join('/')}/bottom.txt`,
  );
  t.equal((await tree.read(bottom, 0, 100)).toString(), 'at the bottom\n', 'a file 30 directories down');

  const sparse = await tree.lookup('/sparse.bin');
  const dataRanges = await tree.dataRanges!(sparse);
  t.equal(sparse.stat.size, 40 * MiB);
  t.ok(
    dataRanges.totalBytes < 4 * MiB,
    `the sparse file has ${dataRanges.totalBytes} bytes of data in ${sparse.stat.size}`,
  );
  for (const offset of [0, 16 * MiB + 12345, 40 * MiB - 1]) {
    t.ok(
      dataRanges.ranges.some(([start, end]) => start <= offset && offset < end),
      `written byte ${offset} is in a data range`,
    );
  }
  t.same(await tree.read(sparse, 8 * MiB, 16), Buffer.alloc(16), 'a hole reads as zeros');
  t.equal((await tree.read(sparse, 40 * MiB - 4, 100)).toString(), 'tail', 'a read past the end is short');

  const compressedText = await tree.lookup('/compressed/mixed.bin');
  const compressedRanges = await tree.dataRanges!(compressedText);
  t.ok(
    compressedRanges.totalBytes < compressedText.stat.size,
    'the all-zero compression units of a compressed file are holes',
  );
  t.same(await tree.read(compressedText, 100000, 1000), Buffer.alloc(1000), 'zeros inside a compressed file');

  const byDosName = await tree.lookup('/ALONGF~1.TXT');
  t.equal(
    byDosName.inode,
    ours.files.get('/A long file name.txt')!.inode,
    'lookup by the DOS name finds the file, as with ntfs-3g',
  );
  t.notOk(ours.files.has('/ALONGF~1.TXT'), 'but readdir does not list it');

  await t.rejects(tree.lookup('/no/such/file'), { name: 'NotFoundError', message: /\/no\/such\/file/ });
  await t.rejects(tree.lookup('/big.bin/child'), { name: 'NotFoundError' });
  await t.rejects(tree.readlink(await tree.lookup('/big.bin')), /not a symbolic link/);
});

/** Raw reparse data: a Windows symbolic link (tag 0xA000000C). */
function windowsSymlink(target: string, relative: boolean): Buffer {
  const name = Buffer.from(target, 'utf16le');
  const body = Buffer.alloc(12);
  body.writeUInt16LE(0, 0);
  body.writeUInt16LE(name.length, 2);
  body.writeUInt16LE(name.length, 4);
  body.writeUInt16LE(name.length, 6);
  body.writeUInt32LE(relative ? 1 : 0, 8);
  const data = Buffer.concat([body, name, name]);
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0xa000000c, 0);
  header.writeUInt16LE(data.length, 4);
  return Buffer.concat([header, data]);
}

t.test('reparse points: WSL special files, Windows symlinks, unknown tags', async (t) => {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'reparse.img'), 64 * MiB);
  await withNtfsMount(
    t,
    image,
    async (root) => {
      await run('mkfifo', [path.join(root, 'wsl-fifo')]);
      await run('mknod', [path.join(root, 'wsl-char'), 'c', '4', '5']);
      await run('mknod', [path.join(root, 'wsl-block'), 'b', '259', '70000']);
      await run('python3', [
        '-c',
        'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
        path.join(root, 'wsl-socket'),
      ]);
      await fs.symlink('target/of/wsl link', path.join(root, 'wsl-symlink'));
      await fs.mkdir(path.join(root, 'dir'));
      await fs.mkdir(path.join(root, 'sub'));
      await fs.writeFile(path.join(root, 'dir', 'file.txt'), 'target\n');
      await fs.writeFile(path.join(root, 'sub', 'windows-link'), '');
      await setXattr(
        path.join(root, 'sub', 'windows-link'),
        'system.ntfs_reparse_data',
        windowsSymlink('..\\dir\\file.txt', true),
      );
      await fs.writeFile(path.join(root, 'unknown-tag'), '');
      const unknown = Buffer.alloc(8 + 16, 7);
      unknown.writeUInt32LE(0x80000013, 0);
      unknown.writeUInt16LE(16, 4);
      unknown.writeUInt16LE(0, 6);
      await setXattr(path.join(root, 'unknown-tag'), 'system.ntfs_reparse_data', unknown);
    },
    'special_files=wsl',
  );
  const { tree } = await openNtfs(t, image);
  const ours = await walkTree(tree);
  t.same(ours.problems, []);
  const theirs = await withNtfsMount(t, image, walkMount, 'ro');
  t.same(compareWalks(ours.files, theirs), [], 'as ntfs-3g shows them');
  t.equal(ours.files.get('/wsl-block')?.type, 'block-device');
  t.equal(ours.files.get('/wsl-socket')?.type, 'socket');
  t.equal(ours.files.get('/sub/windows-link')?.target, '../dir/file.txt', 'relative Windows symlink');
  t.equal(ours.files.get('/wsl-symlink')?.target, 'target/of/wsl link');
  t.equal(ours.files.get('/unknown-tag')?.target, 'unsupported reparse tag 0x80000013');
});

t.test('cluster sizes: 512 bytes and 64 KiB', async (t) => {
  for (const clusterSize of [512, 65536]) {
    const directory = await tempDir(t);
    const image = await makeNtfsImage(path.join(directory, `c${clusterSize}.img`), 128 * MiB, [
      '--cluster-size',
      String(clusterSize),
    ]);
    await withNtfsMount(t, image, async (root) => {
      const prng = new Prng(clusterSize);
      await fs.mkdir(path.join(root, 'files'));
      for (let index = 0; index < 600; index++)
        await fs.writeFile(path.join(root, 'files', `f${index}`), textLike(prng, (index * 997) % 70000));
      await writeLargeDistinctFile(path.join(root, 'large.bin'), 12 * MiB + 5, clusterSize);
      await fs.symlink('files/f1', path.join(root, 'link'));
    });
    const { tree } = await openNtfs(t, image);
    const ours = await walkTree(tree);
    t.same(ours.problems, []);
    const theirs = await withNtfsMount(t, image, walkMount, 'ro');
    t.equal(theirs.size, 604, 'the root, files/ and its 600 files, large.bin, link');
    t.same(compareWalks(ours.files, theirs), [], `${clusterSize}-byte clusters: the tree matches the mount`);
  }
});
