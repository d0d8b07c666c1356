// Listing a path of a volume: a directory's entries with their metadata, or one file.
import type { FileStat, FileTree } from '../fs/filesystem.js';
import { isSafeName, joinVolumePath, normalizeVolumePath } from './paths.js';

export interface ListedEntry {
  name: string;
  path: string;
  type: FileStat['type'];
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  inode: number;
  mtime: string;
  target: string | null;
}

export interface Listing {
  path: string;
  type: FileStat['type'];
  entries: ListedEntry[];
}

async function describe(tree: FileTree, path: string, name: string): Promise<ListedEntry> {
  const node = await tree.lookup(path);
  const { stat } = node;
  return {
    name,
    path,
    type: stat.type,
    size: stat.size,
    mode: stat.mode,
    uid: stat.uid,
    gid: stat.gid,
    nlink: stat.nlink,
    inode: stat.inode,
    mtime: new Date(stat.mtimeMs).toISOString(),
    target: stat.type === 'symlink' ? await tree.readlink(node) : null,
  };
}

export async function listPath(tree: FileTree, requested: string): Promise<Listing> {
  const path = normalizeVolumePath(requested);
  const node = await tree.lookup(path);
  if (node.stat.type !== 'directory')
    return { path, type: node.stat.type, entries: [await describe(tree, path, path.split('/').pop() ?? '/')] };
  const children = (await tree.readdir(node))
    .filter((child) => isSafeName(child.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const entries: ListedEntry[] = [];
  for (const child of children) entries.push(await describe(tree, joinVolumePath(path, child.name), child.name));
  return { path, type: 'directory', entries };
}

const TYPE_LETTER: Record<FileStat['type'], string> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  'block-device': 'b',
  'char-device': 'c',
  fifo: 'p',
  socket: 's',
};

/** The `ls -l` mode string, e.g. -rwsr-xr-x. */
export function modeString(type: FileStat['type'], mode: number): string {
  const bits = ['r', 'w', 'x'];
  let text = TYPE_LETTER[type];
  for (let shift = 6; shift >= 0; shift -= 3)
    for (let bit = 0; bit < 3; bit++) text += mode & (1 << (shift + 2 - bit)) ? bits[bit] : '-';
  const chars = text.split('');
  if (mode & 0o4000) chars[3] = chars[3] === 'x' ? 's' : 'S';
  if (mode & 0o2000) chars[6] = chars[6] === 'x' ? 's' : 'S';
  if (mode & 0o1000) chars[9] = chars[9] === 'x' ? 't' : 'T';
  return chars.join('');
}
