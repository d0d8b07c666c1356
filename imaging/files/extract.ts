// Extracting files from a volume into a directory, as tar would: each path lands under
// the target with its full path from the volume root, with mode, owner, times,
// symlinks, hard links and extended attributes where the target allows; what could not
// be restored is reported, not silently dropped. Nothing is ever written outside the
// target (extract-target.ts). What already exists in the target is kept, replaced or
// compared as the overwrite mode says (overwrite.ts); the writers per type are in
// extract-writers.ts, owner, mode, xattrs and times in extract-metadata.ts.
import type { FileTree } from '../fs/filesystem.js';
import { BackgroundWrites } from './background-writes.js';
import { MetadataWriter } from './extract-metadata.js';
import { emptyReport, type ExtractReport, ProblemList } from './extract-report.js';
import { ExtractTarget } from './extract-target.js';
import {
  type ExtractContext,
  writeDirectory,
  writeRegularFile,
  writeSpecial,
  writeSymlink,
} from './extract-writers.js';
import { decideOverwrite, type Decision, type Existing, type OverwriteMode } from './overwrite.js';
import { walkPaths, type WalkEntry } from './walk.js';

export type { ExtractReport } from './extract-report.js';

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

/** Files written at once: their chunk fetches overlap, so the wait for the server does not add up. */
const PARALLEL_FILES = 6;

export async function extractFiles(options: ExtractOptions): Promise<ExtractReport> {
  const context = await startExtraction(options);
  const visitor = {
    enter: entryExtractor(context),
    skip: (where: string, reason: string) => context.problems.note(reason, where),
  };
  // However the walk ends, no file is still being written when this returns.
  await walkPaths(options.tree, options.paths, visitor, { withParents: true }).finally(() =>
    context.background.settle(),
  );
  context.background.throwFailure();
  await context.metadata.finish();
  context.report.notRestored = context.problems.list();
  return context.report;
}

/** The target made ready and the collaborators one extraction shares; each writer can run on it alone. */
export async function startExtraction(options: ExtractOptions): Promise<ExtractContext> {
  const target = await ExtractTarget.prepare(options.to);
  const problems = new ProblemList();
  const isRoot = process.getuid?.() === 0;
  return {
    tree: options.tree,
    target,
    metadata: new MetadataWriter(options.tree, target.root, problems, isRoot),
    problems,
    report: emptyReport(),
    mode: options.overwrite ?? 'always',
    isRoot,
    background: new BackgroundWrites(PARALLEL_FILES),
    firstPathOfInode: new Map(),
    onProgress: options.onProgress,
    onFile: options.onFile,
  };
}

/** For each walked entry: where it lands, what the overwrite mode decides, then its writer. */
function entryExtractor(context: ExtractContext): (entry: WalkEntry) => Promise<void> {
  // Under `never`, what the image has below a path kept as a non-directory cannot be written.
  const keptNonDirectories: string[] = [];
  return async (entry) => {
    const target = context.target.destination(entry.path);
    if (target === context.target.root) {
      if (entry.stat.type === 'directory') context.metadata.deferDirectory(target, entry.stat);
      return;
    }
    if (keptNonDirectories.some((kept) => entry.path.startsWith(`${kept}/`))) return;
    await context.target.checkParent(target);
    const { decision, existing } = await decideOverwrite(context.tree, entry, target, context.mode);
    if (settled(context, entry, target, decision)) {
      if (entry.stat.type === 'directory' && existing?.stats.isDirectory() !== true)
        keptNonDirectories.push(entry.path);
      return;
    }
    if (decision === 'replace') context.report.replaced++;
    await writeEntry(context, entry, target, decision, existing);
  };
}

/** Counts a path that stays as it is; true when there is nothing to write. */
function settled(context: ExtractContext, entry: WalkEntry, target: string, decision: Decision): boolean {
  if (decision !== 'keep' && decision !== 'unchanged') return false;
  if (decision === 'keep') context.report.kept++;
  else context.report.unchanged++;
  const { stat } = entry;
  // An unchanged file stands in for the other paths of its inode: they become links to it.
  if (decision === 'unchanged' && stat.type === 'file' && stat.nlink > 1 && !context.firstPathOfInode.has(stat.inode))
    context.firstPathOfInode.set(stat.inode, target);
  return true;
}

async function writeEntry(
  context: ExtractContext,
  entry: WalkEntry,
  target: string,
  decision: Decision,
  existing: Existing | null,
): Promise<void> {
  switch (entry.stat.type) {
    case 'directory':
      return writeDirectory(context, entry, target, decision, existing);
    case 'file':
      return writeRegularFile(context, entry, target);
    case 'symlink':
      return writeSymlink(context, entry, target);
    default:
      return writeSpecial(context, entry, target);
  }
}
