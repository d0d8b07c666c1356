// What extraction does with a path that already exists in the target: the one rule
// that both the planning walk (which finds conflicts before anything is written) and
// the extraction itself follow, so what the plan promised is what happens.
import type { BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import type { FileStat, FileTree } from '../fs/filesystem.js';
import type { WalkEntry } from './walk.js';

/** `never`: keep what is there; `if-changed`: replace only what differs in size or mtime; `always`: replace. */
export type OverwriteMode = 'never' | 'if-changed' | 'always';
export const OVERWRITE_MODES: readonly OverwriteMode[] = ['never', 'if-changed', 'always'];

/**
 * create: nothing there. merge: a directory onto a directory. replace: remove what is
 * there and write the image's. keep: leave what is there (`never`). unchanged: what is
 * there already equals the image's (`if-changed`). conflict: something is there and no
 * mode was chosen.
 */
export type Decision = 'create' | 'merge' | 'replace' | 'keep' | 'unchanged' | 'conflict';

export interface Existing {
  stats: BigIntStats;
}

/** What is at `target` now, without following a symlink; null when nothing is. */
export async function existingAt(target: string): Promise<Existing | null> {
  const stats = await fs.lstat(target, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
    // ENOTDIR: a parent is not a directory, so nothing can be at the target.
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
    throw error;
  });
  return stats ? { stats } : null;
}

/** Times compare to the microsecond: without python3, extraction restores no finer. */
function sameMtime(stat: FileStat, existing: BigIntStats): boolean {
  const imageNs = stat.mtimeNs ?? BigInt(Math.round(stat.mtimeMs * 1e6));
  return imageNs / 1000n === existing.mtimeNs / 1000n;
}

/** Whether what is at the target already is the image's entry: same size and mtime, or the same link target. */
async function isUnchanged(tree: FileTree, entry: WalkEntry, existing: BigIntStats, target: string): Promise<boolean> {
  if (entry.stat.type === 'file')
    return existing.isFile() && existing.size === BigInt(entry.stat.size) && sameMtime(entry.stat, existing);
  if (entry.stat.type === 'symlink')
    return existing.isSymbolicLink() && (await fs.readlink(target)) === (await tree.readlink(entry.node));
  return false;
}

export async function decideOverwrite(
  tree: FileTree,
  entry: WalkEntry,
  target: string,
  mode: OverwriteMode | null,
): Promise<{ decision: Decision; existing: Existing | null }> {
  const existing = await existingAt(target);
  if (!existing) return { decision: 'create', existing };
  if (entry.stat.type === 'directory' && existing.stats.isDirectory()) return { decision: 'merge', existing };
  if (mode === null) return { decision: 'conflict', existing };
  if (mode === 'never') return { decision: 'keep', existing };
  if (mode === 'if-changed' && (await isUnchanged(tree, entry, existing.stats, target)))
    return { decision: 'unchanged', existing };
  return { decision: 'replace', existing };
}
