// The stages of a file extraction run one at a time on a real ext4 volume filled through
// the kernel: metadata application, a hard link group, a symlink and the target's
// safety checks, each judged by what stat, getfattr and lstat say about what it wrote.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { FileTree } from '../../../imaging/fs/filesystem.js';
import { extFilesystem } from '../../../imaging/fs/ext.js';
import { startExtraction } from '../../../imaging/files/extract.js';
import { writeRegularFile, writeSymlink } from '../../../imaging/files/extract-writers.js';
import type { WalkEntry } from '../../../imaging/files/walk.js';
import { UnsafeTargetError } from '../../../src/core/errors.js';
import { run } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { makeExtImage, MiB, openReader, withMounted } from '../fs/ext-fixtures.js';

const FILE_TIME = '2021-03-04 05:06:07.123456789';
const DIRECTORY_TIME = '2019-01-02 03:04:05.000000042';
const LINK_TIME = '2018-05-06 07:08:09.987654321';

/** What the stages read: a file with owner, setuid mode, nanosecond times and an xattr; three names of one inode; a symlink. */
async function fill(root: string): Promise<void> {
  const meta = path.join(root, 'meta');
  await fs.mkdir(path.join(meta, 'dir'), { recursive: true });
  const file = path.join(meta, 'file');
  await fs.writeFile(file, 'owned and tagged\n');
  await fs.chown(file, 1234, 5678);
  await fs.chmod(file, 0o4751);
  await run('setfattr', ['-n', 'user.note', '-v', 'hello', file]);
  await run('touch', ['-m', '-d', `${FILE_TIME} UTC`, file]);
  await run('touch', ['-a', '-d', `${FILE_TIME} UTC`, file]);
  await fs.chmod(path.join(meta, 'dir'), 0o750);
  await run('touch', ['-d', `${DIRECTORY_TIME} UTC`, path.join(meta, 'dir')]);

  const links = path.join(root, 'links');
  await fs.mkdir(path.join(links, 'sub'), { recursive: true });
  await fs.writeFile(path.join(links, 'a'), 'one inode, three names\n');
  await fs.link(path.join(links, 'a'), path.join(links, 'b'));
  await fs.link(path.join(links, 'a'), path.join(links, 'sub', 'c'));
  await fs.symlink('a', path.join(links, 'symlink'));
  await run('touch', ['-h', '-d', `${LINK_TIME} UTC`, path.join(links, 'symlink')]);
}

async function extTree(t: { teardown(fn: () => unknown): void }): Promise<FileTree> {
  const image = await makeExtImage(t, 'ext4', 32 * MiB);
  await withMounted(t, image, fill);
  const opened = await extFilesystem.open(await openReader(t, image));
  return opened.files!();
}

async function entry(tree: FileTree, volumePath: string): Promise<WalkEntry> {
  const node = await tree.lookup(volumePath);
  return { path: volumePath, node, stat: node.stat };
}

/** `stat` as the oracle: octal mode, owner, group and the mtime to the nanosecond, in UTC. */
async function statLine(file: string): Promise<string> {
  return run('stat', ['-c', '%a %u %g %y', file], { env: { TZ: 'UTC' } });
}

t.test('extraction stages on an ext4 volume', async (t) => {
  const tree = await extTree(t);

  t.test('metadata: owner, mode, nanosecond times, xattrs; a directory gets its own after its contents', async (t) => {
    const to = await tempDir(t);
    const context = await startExtraction({ tree, paths: [], to });
    const file = await entry(tree, '/meta/file');
    const directory = await entry(tree, '/meta/dir');
    const fileTarget = path.join(to, 'file');
    const directoryTarget = path.join(to, 'dir');
    await fs.writeFile(fileTarget, 'written by a writer\n');
    await context.metadata.apply(fileTarget, file.stat, false);
    await context.metadata.recordXattrs(file.node, fileTarget);
    await fs.mkdir(directoryTarget);
    context.metadata.deferDirectory(directoryTarget, directory.stat);
    // Written inside after the directory was queued: must not leave the directory with today's mtime.
    await fs.writeFile(path.join(directoryTarget, 'inside'), '');
    await context.metadata.finish();

    t.equal((await statLine(fileTarget)).trim(), `4751 1234 5678 ${FILE_TIME} +0000`);
    const times = await fs.lstat(fileTarget, { bigint: true });
    t.equal(times.atimeNs, times.mtimeNs, 'atime to the nanosecond too');
    t.equal((await run('getfattr', ['--only-values', '-n', 'user.note', fileTarget])).trim(), 'hello');
    t.equal((await statLine(directoryTarget)).trim(), `750 0 0 ${DIRECTORY_TIME} +0000`);
    t.same(context.problems.list(), [], 'nothing reported as not restored');
  });

  t.test('a hard link group: one inode with three names, its data written once', async (t) => {
    const to = await tempDir(t);
    const context = await startExtraction({ tree, paths: [], to });
    await fs.mkdir(path.join(to, 'links', 'sub'), { recursive: true });
    for (const volumePath of ['/links/a', '/links/b', '/links/sub/c'])
      await writeRegularFile(context, await entry(tree, volumePath), context.target.destination(volumePath));
    await context.background.settle();
    await context.metadata.finish();

    const stats = await Promise.all(['a', 'b', 'sub/c'].map((name) => fs.lstat(path.join(to, 'links', name))));
    t.same(
      stats.map((stat) => stat.ino),
      [stats[0]!.ino, stats[0]!.ino, stats[0]!.ino],
      'the same inode',
    );
    t.equal(stats[0]!.nlink, 3);
    t.equal(await fs.readFile(path.join(to, 'links', 'sub', 'c'), 'utf8'), 'one inode, three names\n');
    t.match(context.report, { files: 1, hardLinks: 2, bytes: 'one inode, three names\n'.length });
  });

  t.test('a symlink: its own target text and its own times, its target untouched', async (t) => {
    const to = await tempDir(t);
    const context = await startExtraction({ tree, paths: [], to });
    const pointedAt = path.join(to, 'a');
    await fs.writeFile(pointedAt, 'not the image file\n');
    await fs.chmod(pointedAt, 0o600);
    const before = await fs.lstat(pointedAt, { bigint: true });
    const link = path.join(to, 'symlink');
    await writeSymlink(context, await entry(tree, '/links/symlink'), link);
    await context.metadata.finish();

    t.equal(await fs.readlink(link), 'a');
    t.match((await statLine(link)).trim(), new RegExp(` ${LINK_TIME} \\+0000$`), "the link's own mtime");
    const after = await fs.lstat(pointedAt, { bigint: true });
    t.equal(after.mtimeNs, before.mtimeNs, "the target's times are not the link's");
    t.equal(after.mode & 0o7777n, 0o600n, "the target's mode is not the link's");
    t.equal(context.report.symlinks, 1);
  });

  t.test('the target: no write through a symlink out of it, no directory removed in the way of a file', async (t) => {
    const to = await tempDir(t);
    const outside = await tempDir(t);
    const context = await startExtraction({ tree, paths: [], to });
    await fs.symlink(outside, path.join(to, 'escape'));
    await t.rejects(context.target.checkParent(path.join(to, 'escape', 'file')), UnsafeTargetError);
    await fs.mkdir(path.join(to, 'docs'));
    await context.target.checkParent(path.join(to, 'docs', 'file'));
    await fs.mkdir(path.join(to, 'busy'));
    await t.rejects(context.target.clear(path.join(to, 'busy')), UnsafeTargetError);
    await fs.writeFile(path.join(to, 'old'), 'left by an earlier run');
    await context.target.clear(path.join(to, 'old'));
    await t.rejects(fs.lstat(path.join(to, 'old')), 'an old file is removed');
  });
});
