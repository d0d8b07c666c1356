// Writing one walked entry into the target, one writer per type: directory, regular
// file (or a further path of a hard-linked one, as a link), symlink, and special files
// (fifos and devices; sockets are only reported). Each counts what it wrote.
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import { execa } from 'execa';
import type { FileStat, FileTree } from '../fs/filesystem.js';
import type { BackgroundWrites } from './background-writes.js';
import type { MetadataWriter } from './extract-metadata.js';
import type { ExtractReport, ProblemList } from './extract-report.js';
import type { ExtractTarget } from './extract-target.js';
import type { Decision, Existing, OverwriteMode } from './overwrite.js';
import type { WalkEntry } from './walk.js';

const READ_BLOCK = 1 << 20;
const WRITE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/** What every writer shares during one extraction. */
export interface ExtractContext {
  tree: FileTree;
  target: ExtractTarget;
  metadata: MetadataWriter;
  problems: ProblemList;
  report: ExtractReport;
  mode: OverwriteMode;
  isRoot: boolean;
  /** Single-link files are written here, a few at a time. */
  background: BackgroundWrites;
  /** The path holding each hard-linked inode's data: its other paths become links to it. */
  firstPathOfInode: Map<number, string>;
  onProgress?(bytes: number, path: string): void;
  onFile?(path: string): void;
}

/** A directory is made private (0700) and gets its own mode and times once its contents are written. */
export async function writeDirectory(
  context: ExtractContext,
  entry: WalkEntry,
  target: string,
  decision: Decision,
  existing: Existing | null,
): Promise<void> {
  const existingIsDirectory = existing?.stats.isDirectory() === true;
  if (existing && !existingIsDirectory) await fs.unlink(target);
  if (!existingIsDirectory) await fs.mkdir(target, { mode: 0o700 });
  context.target.addDirectory(target);
  if (decision !== 'merge') context.report.directories++;
  // `never` leaves a directory that was already there as it was: mode, times, xattrs.
  if (decision === 'merge' && context.mode === 'never') return;
  context.metadata.deferDirectory(target, entry.stat);
  await context.metadata.recordXattrs(entry.node, target);
}

/**
 * A regular file, or a link to the first path of its inode. A file with several links is
 * written before the walk goes on, since its later paths link to it; others in the background.
 */
export async function writeRegularFile(context: ExtractContext, entry: WalkEntry, target: string): Promise<void> {
  const { stat } = entry;
  await context.target.clear(target);
  const first = stat.nlink > 1 ? context.firstPathOfInode.get(stat.inode) : undefined;
  if (first) {
    await fs.link(first, target);
    context.report.hardLinks++;
    context.onFile?.(entry.path);
    return;
  }
  const write = async () => {
    await writeFileData(context, entry, target);
    context.report.files++;
    context.onFile?.(entry.path);
    await context.metadata.apply(target, stat, false);
    await context.metadata.recordXattrs(entry.node, target);
  };
  if (stat.nlink > 1) {
    await write();
    context.firstPathOfInode.set(stat.inode, target);
  } else {
    await context.background.start(write);
  }
}

/** Only the ranges that hold data are read and written: a sparse file stays sparse. */
export async function writeFileData(context: ExtractContext, entry: WalkEntry, target: string): Promise<void> {
  const { tree, report } = context;
  const handle = await fs.open(target, WRITE_FLAGS, 0o600);
  try {
    const size = entry.stat.size;
    await handle.truncate(size);
    const ranges = tree.dataRanges ? (await tree.dataRanges(entry.node)).ranges : [[0, size] as const];
    let written = 0;
    for (const [start, end] of ranges) {
      for (let offset = start; offset < Math.min(end, size); offset += READ_BLOCK) {
        const length = Math.min(READ_BLOCK, Math.min(end, size) - offset);
        const bytes = await tree.read(entry.node, offset, length);
        await handle.write(bytes, 0, bytes.length, offset);
        report.bytes += bytes.length;
        written += bytes.length;
        context.onProgress?.(bytes.length, entry.path);
      }
    }
    // The holes count as written, so the progress reaches the files' sizes.
    if (size > written) context.onProgress?.(size - written, entry.path);
  } finally {
    await handle.close();
  }
}

export async function writeSymlink(context: ExtractContext, entry: WalkEntry, target: string): Promise<void> {
  await context.target.clear(target);
  await fs.symlink(await context.tree.readlink(entry.node), target);
  context.report.symlinks++;
  context.onFile?.(entry.path);
  await context.metadata.apply(target, entry.stat, true);
}

/** Fifos always; device nodes only as root; sockets never (a socket belongs to a running program). */
export async function writeSpecial(context: ExtractContext, entry: WalkEntry, target: string): Promise<void> {
  const { stat } = entry;
  await context.target.clear(target);
  // Counted as done either way, so the progress reaches its total.
  const notRestored = (what: string) => {
    context.problems.note(what, target);
    context.onFile?.(entry.path);
  };
  if (stat.type === 'socket') return notRestored('sockets are not restored');
  if (stat.type === 'fifo') await execa('mkfifo', ['-m', (stat.mode & 0o777).toString(8), target]);
  else if (!context.isRoot) return notRestored('device files not restored (not running as root)');
  else await makeDeviceNode(target, stat);
  context.report.special++;
  context.onFile?.(entry.path);
  await context.metadata.apply(target, stat, false);
}

/** Linux's dev_t: 12 bits of major, 20 of minor, the minor's low byte first. */
async function makeDeviceNode(target: string, stat: FileStat): Promise<void> {
  const rdev = stat.rdev ?? 0;
  const major = (rdev >> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  await execa('mknod', [target, stat.type === 'block-device' ? 'b' : 'c', String(major), String(minor)]);
}
