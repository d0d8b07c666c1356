// Owner, mode, extended attributes and times of what an extraction wrote. Owner and
// mode are set as each entry is written, a directory's only once its contents exist (a
// read-only directory could not be filled); then xattrs; then all times at once, last,
// since writing inside a directory changes its mtime.
import fs from 'node:fs/promises';
import type { FileNode, FileStat, FileTree } from '../fs/filesystem.js';
import type { ProblemList } from './extract-report.js';
import { restoreTimes, type TimedPath } from './extract-times.js';
import { XattrDump } from './extract-xattrs.js';

export class MetadataWriter {
  private readonly times: TimedPath[] = [];
  private readonly directories: { target: string; stat: FileStat }[] = [];
  private readonly xattrs: XattrDump;

  constructor(
    tree: FileTree,
    private readonly root: string,
    private readonly problems: ProblemList,
    /** Only root can give files away; others keep their own ownership and say so. */
    private readonly isRoot = process.getuid?.() === 0,
  ) {
    this.xattrs = new XattrDump(tree, root);
  }

  /** Owner, then mode (chown clears setuid and setgid); the times are queued for finish(). */
  async apply(target: string, stat: FileStat, symlink: boolean): Promise<void> {
    const note = (what: string) => (error: Error) => this.problems.note(`${what} (${error.message})`, target);
    if (this.isRoot) await fs.lchown(target, stat.uid, stat.gid).catch(note('owner not restored'));
    if (!symlink) await fs.chmod(target, stat.mode).catch(note('mode not restored'));
    this.times.push({ target, stat, symlink });
  }

  /** A directory's owner, mode and times are applied in finish(), after what is inside it. */
  deferDirectory(target: string, stat: FileStat): void {
    this.directories.push({ target, stat });
  }

  async recordXattrs(node: FileNode, target: string): Promise<void> {
    await this.xattrs.record(node, target);
  }

  /** Deepest directories first, then xattrs, then every time. */
  async finish(): Promise<void> {
    for (const { target, stat } of this.directories.reverse()) await this.apply(target, stat, false);
    if (!this.isRoot) this.problems.note('owners not restored (not running as root)', this.root);
    const note = (what: string, example: string) => this.problems.note(what, example);
    await this.xattrs.apply(note);
    await restoreTimes(this.times, note);
  }
}
