// Extracting files from a volume into a directory, as tar would: each path lands under
// the target with its full path from the volume root, with mode, owner, times,
// symlinks, hard links and extended attributes where the target allows; what could not
// be restored is reported, not silently dropped. Nothing is ever written outside the
// target: parents are checked to be real directories, and nothing is opened through a
// symlink. What already exists in the target is kept, replaced or compared as the
// overwrite mode says (overwrite.ts).
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { UnsafeTargetError } from '../../src/core/errors.js';
import type { FileStat, FileTree } from '../fs/filesystem.js';
import { decideOverwrite, type Decision, type OverwriteMode } from './overwrite.js';
import { walkPaths, type WalkEntry } from './walk.js';

export interface ExtractReport {
  /** Directories created (those already there are merged into, not counted). */
  directories: number;
  files: number;
  symlinks: number;
  hardLinks: number;
  special: number;
  bytes: number;
  /** Paths that existed in the target and were left as they were (`--overwrite never`). */
  kept: number;
  /** Paths that existed with the same size and mtime (or link target) and were not rewritten (`--overwrite if-changed`). */
  unchanged: number;
  /** Paths that existed and were replaced by the image's. */
  replaced: number;
  /** What could not be restored, grouped: message → count (and a first example). */
  notRestored: { what: string; count: number; example: string }[];
}

export interface ExtractOptions {
  tree: FileTree;
  paths: string[];
  to: string;
  /** What to do with paths that already exist; `always` when not given. */
  overwrite?: OverwriteMode;
  /** Bytes of a file written; a sparse file's holes are counted when it is done, so the sum is the files' sizes. */
  onProgress?(bytes: number, path: string): void;
  /** An entry other than a directory written (file, hard link, symlink, special file). */
  onFile?(path: string): void;
}

const READ_BLOCK = 1 << 20;
/** Files written at once: their chunk fetches overlap, so the wait for the server does not add up. */
const PARALLEL_FILES = 6;
const WRITE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export async function extractFiles(options: ExtractOptions): Promise<ExtractReport> {
  const root = path.resolve(options.to);
  await fs.mkdir(root, { recursive: true });
  const rootReal = await fs.realpath(root);
  const report: ExtractReport = {
    directories: 0,
    files: 0,
    symlinks: 0,
    hardLinks: 0,
    special: 0,
    bytes: 0,
    kept: 0,
    unchanged: 0,
    replaced: 0,
    notRestored: [],
  };
  const mode = options.overwrite ?? 'always';
  const problems = new Map<string, { count: number; example: string }>();
  const note = (what: string, example: string) => {
    const entry = problems.get(what);
    if (entry) entry.count++;
    else problems.set(what, { count: 1, example });
  };
  const isRoot = process.getuid?.() === 0;
  const firstPathOfInode = new Map<number, string>();
  const verifiedDirectories = new Set<string>([rootReal]);
  const xattrDump: string[] = [];

  const destination = (volumePath: string) => path.resolve(rootReal, `.${volumePath}`);

  /** The parent must be a real directory inside the target: never follow a symlink out. */
  const checkParent = async (target: string) => {
    const parent = path.dirname(target);
    if (verifiedDirectories.has(parent)) return;
    const stats = await fs.lstat(parent);
    const real = await fs.realpath(parent);
    if (!stats.isDirectory() || (real !== rootReal && !real.startsWith(`${rootReal}${path.sep}`))) {
      throw new UnsafeTargetError(`${parent} is not a directory inside ${rootReal}: refusing to write through it`);
    }
    verifiedDirectories.add(parent);
  };

  /** Remove what an earlier extraction left, without following it. */
  const clear = async (target: string) => {
    const existing = await fs.lstat(target).catch(() => null);
    if (!existing) return;
    if (existing.isDirectory()) throw new UnsafeTargetError(`${target} is a directory in the way of a file`);
    await fs.unlink(target);
  };

  const times: { target: string; stat: FileStat; symlink: boolean }[] = [];
  const setMetadata = async (target: string, stat: FileStat, symlink: boolean) => {
    if (isRoot) {
      await fs
        .lchown(target, stat.uid, stat.gid)
        .catch((error: Error) => note(`owner not restored (${error.message})`, target));
    }
    if (!symlink) {
      // After chown, which clears setuid and setgid.
      await fs.chmod(target, stat.mode).catch((error: Error) => note(`mode not restored (${error.message})`, target));
    }
    // Times go last, all at once, after everything inside directories exists.
    times.push({ target, stat, symlink });
  };

  const recordXattrs = async (entry: WalkEntry, target: string) => {
    const attributes = await options.tree.xattrs(entry.node).catch(() => new Map<string, Buffer>());
    if (attributes.size === 0) return;
    xattrDump.push(`# file: ${path.relative(rootReal, target).replace(/\\/g, '\\\\').replace(/\n/g, '\\012')}`);
    for (const [name, value] of attributes) xattrDump.push(`${name}=0x${value.toString('hex')}`);
    xattrDump.push('');
  };

  const writeFile = async (entry: WalkEntry, target: string) => {
    const handle = await fs.open(target, WRITE_FLAGS, 0o600);
    try {
      const size = entry.stat.size;
      await handle.truncate(size);
      const ranges = options.tree.dataRanges
        ? (await options.tree.dataRanges(entry.node)).ranges
        : [[0, size] as const];
      let written = 0;
      for (const [start, end] of ranges) {
        for (let offset = start; offset < Math.min(end, size); offset += READ_BLOCK) {
          const length = Math.min(READ_BLOCK, Math.min(end, size) - offset);
          const bytes = await options.tree.read(entry.node, offset, length);
          await handle.write(bytes, 0, bytes.length, offset);
          report.bytes += bytes.length;
          written += bytes.length;
          options.onProgress?.(bytes.length, entry.path);
        }
      }
      if (size > written) options.onProgress?.(size - written, entry.path);
    } finally {
      await handle.close();
    }
  };

  // Files with one link are written in the background, a few at a time; everything that
  // later entries depend on (directories, the first path of a hard-linked file) is done in
  // walk order.
  const writing = new Set<Promise<void>>();
  let writeFailure: { error: unknown } | null = null;
  const inBackground = async (work: () => Promise<void>) => {
    while (writing.size >= PARALLEL_FILES) await Promise.race(writing);
    if (writeFailure) throw writeFailure.error;
    const task: Promise<void> = work()
      .catch((error: unknown) => {
        writeFailure ??= { error };
      })
      .finally(() => writing.delete(task));
    writing.add(task);
  };

  const directoriesToFinish: { target: string; stat: FileStat }[] = [];
  // Under `never`, what the image has below a path kept as a non-directory cannot be written.
  const keptNonDirectories: string[] = [];

  /** Counts a path that stays as it is; true when there is nothing to write. */
  const settled = (entry: WalkEntry, target: string, decision: Decision, existingIsDirectory: boolean): boolean => {
    if (decision !== 'keep' && decision !== 'unchanged') return false;
    if (decision === 'keep') report.kept++;
    else report.unchanged++;
    if (entry.stat.type === 'directory' && !existingIsDirectory) keptNonDirectories.push(entry.path);
    // An unchanged file stands in for the other paths of its inode: they become links to it.
    if (
      decision === 'unchanged' &&
      entry.stat.type === 'file' &&
      entry.stat.nlink > 1 &&
      !firstPathOfInode.has(entry.stat.inode)
    )
      firstPathOfInode.set(entry.stat.inode, target);
    return true;
  };

  // However the walk ends, no file is still being written when this returns.
  await walkPaths(
    options.tree,
    options.paths,
    {
      enter: async (entry) => {
        const target = destination(entry.path);
        const { stat } = entry;
        if (target === rootReal) {
          if (stat.type === 'directory') directoriesToFinish.push({ target, stat });
          return;
        }
        if (keptNonDirectories.some((kept) => entry.path.startsWith(`${kept}/`))) return;
        await checkParent(target);
        const { decision, existing } = await decideOverwrite(options.tree, entry, target, mode);
        if (settled(entry, target, decision, existing !== null && existing.stats.isDirectory())) return;
        if (decision === 'replace') report.replaced++;
        switch (stat.type) {
          case 'directory': {
            if (existing && !existing.stats.isDirectory()) await fs.unlink(target);
            if (!existing || !existing.stats.isDirectory()) await fs.mkdir(target, { mode: 0o700 });
            verifiedDirectories.add(target);
            if (decision !== 'merge') report.directories++;
            // `never` leaves a directory that was already there as it was: mode, times, xattrs.
            if (decision === 'merge' && mode === 'never') return;
            directoriesToFinish.push({ target, stat });
            await recordXattrs(entry, target);
            return;
          }
          case 'file': {
            await clear(target);
            const first = stat.nlink > 1 ? firstPathOfInode.get(stat.inode) : undefined;
            if (first) {
              await fs.link(first, target);
              report.hardLinks++;
              options.onFile?.(entry.path);
              return;
            }
            const write = async () => {
              await writeFile(entry, target);
              report.files++;
              options.onFile?.(entry.path);
              await setMetadata(target, stat, false);
              await recordXattrs(entry, target);
            };
            if (stat.nlink > 1) {
              await write();
              firstPathOfInode.set(stat.inode, target);
            } else {
              await inBackground(write);
            }
            return;
          }
          case 'symlink': {
            await clear(target);
            await fs.symlink(await options.tree.readlink(entry.node), target);
            report.symlinks++;
            options.onFile?.(entry.path);
            await setMetadata(target, stat, true);
            return;
          }
          default: {
            await clear(target);
            // Counted as done either way, so the progress reaches its total.
            if (stat.type === 'socket') {
              note('sockets are not restored', target);
              options.onFile?.(entry.path);
              return;
            }
            if (stat.type === 'fifo') await execa('mkfifo', ['-m', (stat.mode & 0o777).toString(8), target]);
            else if (!isRoot) {
              note('device files not restored (not running as root)', target);
              options.onFile?.(entry.path);
              return;
            } else {
              const rdev = stat.rdev ?? 0;
              const major = (rdev >> 8) & 0xfff;
              const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
              await execa('mknod', [target, stat.type === 'block-device' ? 'b' : 'c', String(major), String(minor)]);
            }
            report.special++;
            options.onFile?.(entry.path);
            await setMetadata(target, stat, false);
          }
        }
      },
      skip: (where, reason) => note(reason, where),
    },
    { withParents: true },
  ).finally(() => Promise.all(writing));
  if (writeFailure) throw (writeFailure as { error: unknown }).error;

  for (const { target, stat } of directoriesToFinish.reverse()) await setMetadata(target, stat, false);
  if (!isRoot) note('owners not restored (not running as root)', rootReal);

  if (xattrDump.length) {
    const dumpFile = path.join(rootReal, `.b365-xattrs-${process.pid}`);
    await fs.writeFile(dumpFile, xattrDump.join('\n'));
    try {
      const result = await execa('setfattr', ['-h', `--restore=${dumpFile}`], { cwd: rootReal, reject: false });
      if (result.exitCode !== 0) {
        for (const line of String(result.stderr).split('\n').filter(Boolean))
          note(
            `extended attribute not restored (${line.replace(/^setfattr: /, '').replace(/^[^:]*: /, '')})`,
            line.split(':')[1]?.trim() ?? rootReal,
          );
      }
    } catch (error) {
      note(`extended attributes not restored (${(error as Error).message})`, rootReal);
    } finally {
      await fs.rm(dumpFile, { force: true });
    }
  }
  await restoreTimes(times, note);
  report.notRestored = [...problems].map(([what, { count, example }]) => ({ what, count, example }));
  return report;
}

const SET_TIMES = `
import json, os, sys
for line in sys.stdin:
    path, atime, mtime, follow = json.loads(line)
    try:
        os.utime(path, ns=(atime, mtime), follow_symlinks=follow)
    except OSError as error:
        print(path + "\\t" + (error.strerror or str(error)), file=sys.stderr)
`;

const nanoseconds = (ms: number, ns: bigint | undefined) => (ns ?? BigInt(Math.round(ms * 1e6))).toString();

/**
 * Times to the nanosecond, as the filesystem holds them. Node rounds to a double of
 * seconds, so the whole batch goes through one python3 (utimensat) when there is one;
 * otherwise Node sets them to the microsecond and says so.
 */
async function restoreTimes(
  entries: { target: string; stat: FileStat; symlink: boolean }[],
  note: (what: string, example: string) => void,
): Promise<void> {
  if (entries.length === 0) return;
  const input = entries
    .map(
      ({ target, stat, symlink }) =>
        `[${JSON.stringify(target)},${nanoseconds(stat.atimeMs, stat.atimeNs)},${nanoseconds(stat.mtimeMs, stat.mtimeNs)},${!symlink}]`,
    )
    .join('\n');
  const result = await execa('python3', ['-c', SET_TIMES], { input, reject: false });
  if (result.exitCode === 0 && !result.failed) {
    for (const line of String(result.stderr).split('\n').filter(Boolean))
      note(`times not restored (${line.split('\t')[1]})`, line.split('\t')[0]!);
    return;
  }
  note('times restored to the microsecond only (python3 is not available for nanoseconds)', entries[0]!.target);
  for (const { target, stat, symlink } of entries) {
    const atime = stat.atimeMs / 1000;
    const mtime = stat.mtimeMs / 1000;
    await (symlink ? fs.lutimes(target, atime, mtime) : fs.utimes(target, atime, mtime)).catch((error: Error) =>
      note(`times not restored (${error.message})`, target),
    );
  }
}
