// The walk before an extraction: how many files and bytes it will write (the real
// total of its progress bar) and which paths already exist in the target, found before
// anything is written so a refusal leaves the target untouched.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FileTree } from '../fs/filesystem.js';
import { decideOverwrite, type OverwriteMode } from './overwrite.js';
import { walkPaths } from './walk.js';

/** Conflicts named in full; the rest are only counted. */
const CONFLICTS_LISTED = 10;

export interface ExtractPlan {
  /** Entries other than directories: files, hard links, symlinks, special files. */
  files: number;
  directories: number;
  /** Bytes of the regular files that will be written (a hard-linked file once). */
  bytes: number;
  /** Paths left as they are (`never`) or found equal (`if-changed`). */
  kept: number;
  /** Paths that exist in the target when no overwrite mode was chosen: the first few, and how many. */
  conflicts: { count: number; first: string[] };
}

/** The target's real path, or null when it does not exist yet (then nothing is in the way). */
async function realTarget(to: string): Promise<string | null> {
  return fs.realpath(path.resolve(to)).catch(() => null);
}

export async function planExtraction(
  tree: FileTree,
  paths: string[],
  to: string,
  mode: OverwriteMode | null,
): Promise<ExtractPlan> {
  const plan: ExtractPlan = { files: 0, directories: 0, bytes: 0, kept: 0, conflicts: { count: 0, first: [] } };
  const root = await realTarget(to);
  const seenInodes = new Set<number>();
  // Under `never`, what the image has below a path kept as a non-directory cannot be written.
  const keptNonDirectories: string[] = [];
  await walkPaths(
    tree,
    paths,
    {
      enter: async (entry) => {
        if (entry.path === '/' || keptNonDirectories.some((kept) => entry.path.startsWith(`${kept}/`))) return;
        const isDirectory = entry.stat.type === 'directory';
        const target = root ? path.resolve(root, `.${entry.path}`) : null;
        const { decision, existing } = target
          ? await decideOverwrite(tree, entry, target, mode)
          : { decision: 'create' as const, existing: null };
        if (decision === 'conflict') {
          plan.conflicts.count++;
          if (plan.conflicts.first.length < CONFLICTS_LISTED) plan.conflicts.first.push(target!);
        }
        if (decision === 'keep' || decision === 'unchanged') {
          plan.kept++;
          if (isDirectory && existing && !existing.stats.isDirectory()) keptNonDirectories.push(entry.path);
          return;
        }
        if (isDirectory) {
          plan.directories++;
          return;
        }
        plan.files++;
        if (entry.stat.type !== 'file' || (entry.stat.nlink > 1 && seenInodes.has(entry.stat.inode))) return;
        if (entry.stat.nlink > 1) seenInodes.add(entry.stat.inode);
        plan.bytes += entry.stat.size;
      },
      skip: () => {},
    },
    { withParents: true },
  );
  return plan;
}
