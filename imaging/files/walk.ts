// Walking paths of a volume: each requested path and, for directories, everything
// under it, parents before children. Entry names that could escape a target directory
// ('..', '/', NUL) are reported, never followed.
import { FormatError, NotFoundError } from '../../src/core/errors.js';
import type { DirEntry, FileNode, FileStat, FileTree } from '../fs/filesystem.js';
import { isSafeName, joinVolumePath, normalizeVolumePath } from './paths.js';

export interface WalkEntry {
  /** Absolute path inside the volume. */
  path: string;
  node: FileNode;
  stat: FileStat;
}

export interface WalkVisitor {
  enter(entry: WalkEntry): Promise<void>;
  /** After a directory's children. */
  leave?(entry: WalkEntry): Promise<void>;
  /** A name that cannot be created safely, or an entry that cannot be read. */
  skip(path: string, reason: string): void;
}

/** Resolve each path, then the parent directories of a path before it. */
export async function walkPaths(
  tree: FileTree,
  paths: string[],
  visitor: WalkVisitor,
  options: { withParents?: boolean } = {},
): Promise<void> {
  const seenParents = new Set<string>();
  for (const requested of paths) {
    const path = normalizeVolumePath(requested);
    if (options.withParents) {
      // Parents are created (as directories with their own mode and times), not walked.
      const parts = path.split('/').filter(Boolean);
      for (let depth = 1; depth < parts.length; depth++) {
        const parent = `/${parts.slice(0, depth).join('/')}`;
        if (seenParents.has(parent)) continue;
        seenParents.add(parent);
        const node = await tree.lookup(parent);
        await visitor.enter({ path: parent, node, stat: node.stat });
      }
    }
    let node: FileNode;
    try {
      node = await tree.lookup(path);
    } catch (error) {
      if (error instanceof NotFoundError)
        throw new NotFoundError(`${path} does not exist in the volume`, { cause: error });
      throw error;
    }
    await walkNode(tree, { path, node, stat: node.stat }, visitor);
  }
}

async function walkNode(tree: FileTree, entry: WalkEntry, visitor: WalkVisitor): Promise<void> {
  await visitor.enter(entry);
  if (entry.stat.type !== 'directory') return;
  let children: DirEntry[];
  try {
    children = await tree.readdir(entry.node);
  } catch (error) {
    // A damaged directory costs its own contents, not the rest of the walk.
    if (!(error instanceof FormatError)) throw error;
    visitor.skip(entry.path, `cannot be read: ${error.message}`);
    await visitor.leave?.(entry);
    return;
  }
  children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const child of children) {
    if (!isSafeName(child.name)) {
      visitor.skip(joinVolumePath(entry.path, JSON.stringify(child.name)), 'unsafe file name in the image');
      continue;
    }
    const path = joinVolumePath(entry.path, child.name);
    let node: FileNode;
    try {
      node = await tree.lookup(path);
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      visitor.skip(path, `cannot be read: ${error.message}`);
      continue;
    }
    await walkNode(tree, { path, node, stat: node.stat }, visitor);
  }
  await visitor.leave?.(entry);
}
