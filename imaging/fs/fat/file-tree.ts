// Read-only access to the files of a FAT volume: paths resolve through directories in
// the fixed root region or in cluster chains; file data is read along cluster chains,
// contiguous clusters in one read.
import { FormatError, NotFoundError, UsageError } from '../../../src/core/errors.js';
import type { BlockReader } from '../../block-reader.js';
import type { DirEntry, FileNode, FileStat, FileTree } from '../filesystem.js';
import type { FatGeometry } from './boot-sector.js';
import { ATTR_READ_ONLY, parseDirectory, type DirectoryPiece, type FatDirEntry } from './directory.js';
import type { ClusterRun, FatTable } from './table.js';

/** The root has no directory entry of its own; every other inode is its entry's byte offset / 32. */
export const ROOT_INODE = 1;
/** How many files' cluster chains stay cached between reads. */
const CACHED_CHAINS = 256;

interface FatRecord {
  path: string;
  inode: number;
  isDirectory: boolean;
  /** 0 for the FAT12/16 root (its fixed region) and for empty files. */
  firstCluster: number;
  size: number;
  stat: FileStat;
}

/** The whole of a directory's bytes and where they sit in the volume. */
export async function readDirectoryBytes(
  reader: BlockReader,
  geometry: FatGeometry,
  table: FatTable,
  firstCluster: number,
  path: string,
): Promise<{ bytes: Buffer; pieces: DirectoryPiece[] }> {
  if (firstCluster === 0) {
    // Only the FAT12/16 root lives outside the data region.
    const piece = { volumeOffset: geometry.rootDirOffset, length: geometry.rootDirBytes };
    return { bytes: await reader.read(piece.volumeOffset, piece.length), pieces: [piece] };
  }
  const runs = await table.chain(firstCluster, null, `directory ${path}`);
  const pieces = runs.map((run) => ({
    volumeOffset: table.clusterOffset(run.first),
    length: run.count * geometry.clusterSize,
  }));
  const parts: Buffer[] = [];
  for (const piece of pieces) parts.push(await reader.read(piece.volumeOffset, piece.length));
  return { bytes: Buffer.concat(parts), pieces };
}

function statOf(entry: FatDirEntry | null, inode: number): FileStat {
  // The root has no directory entry, so no times either.
  if (!entry)
    return {
      type: 'directory',
      size: 0,
      mode: 0o755,
      uid: 0,
      gid: 0,
      nlink: 1,
      mtimeMs: 0,
      atimeMs: 0,
      ctimeMs: 0,
      inode,
    };
  // Windows sets read-only on folders to mark them customized, not to forbid writing;
  // Linux ignores it on directories too (vfat without the rodir option).
  const readOnly = !entry.isDirectory && (entry.attributes & ATTR_READ_ONLY) !== 0;
  const mode = entry.isDirectory ? 0o755 : readOnly ? 0o444 : 0o644;
  return {
    type: entry.isDirectory ? 'directory' : 'file',
    size: entry.size,
    mode,
    uid: 0,
    gid: 0,
    nlink: 1,
    mtimeMs: entry.mtimeMs,
    atimeMs: entry.atimeMs,
    // FAT records no change time; like Linux we report the modification time.
    ctimeMs: entry.mtimeMs,
    inode,
  };
}

function joinPath(directory: string, name: string): string {
  return directory === '/' ? `/${name}` : `${directory}/${name}`;
}

export class FatFileTree implements FileTree {
  private readonly records = new Map<number, FatRecord>();
  private readonly listings = new Map<number, { entries: FatDirEntry[]; records: FatRecord[] }>();
  private readonly chains = new Map<number, ClusterRun[]>();
  /** Which directory each listed directory's first cluster belongs to: a second owner means a cycle or a cross-link. */
  private readonly directoryClusters = new Map<number, FatRecord>();

  constructor(
    private readonly reader: BlockReader,
    private readonly geometry: FatGeometry,
    private readonly table: FatTable,
  ) {
    const root: FatRecord = {
      path: '/',
      inode: ROOT_INODE,
      isDirectory: true,
      firstCluster: geometry.fatType === 32 ? geometry.rootCluster : 0,
      size: 0,
      stat: statOf(null, ROOT_INODE),
    };
    this.records.set(ROOT_INODE, root);
  }

  private get where(): string {
    return this.reader.description;
  }

  async lookup(path: string): Promise<FileNode> {
    if (!path.startsWith('/')) throw new UsageError(`${path}: not an absolute path`);
    const components: string[] = [];
    for (const component of path.split('/')) {
      if (component === '' || component === '.') continue;
      if (component === '..') components.pop();
      else components.push(component);
    }
    let record = this.records.get(ROOT_INODE)!;
    for (const component of components) {
      if (!record.isDirectory) throw new NotFoundError(`${this.where}: ${path}: ${record.path} is not a directory`);
      const { entries, records } = await this.listing(record);
      // Exact name first; FAT itself is case-insensitive and every name has a short alias.
      let index = entries.findIndex((entry) => entry.name === component);
      if (index < 0) {
        const folded = component.toUpperCase();
        index = entries.findIndex((entry) => entry.name.toUpperCase() === folded);
        if (index < 0) index = entries.findIndex((entry) => entry.shortName.toUpperCase() === folded);
      }
      if (index < 0) throw new NotFoundError(`${this.where}: ${path}: no such file or directory`);
      record = records[index]!;
    }
    return this.nodeOf(record, components.length ? `/${components.join('/')}` : '/');
  }

  async readdir(node: FileNode): Promise<DirEntry[]> {
    const record = await this.recordOf(node);
    if (!record.isDirectory) throw new UsageError(`${this.where}: ${node.path} is not a directory`);
    const { records } = await this.listing(record);
    return records.map((child) => ({
      name: child.path.slice(child.path.lastIndexOf('/') + 1),
      type: child.stat.type,
      inode: child.inode,
    }));
  }

  async read(node: FileNode, offset: number, length: number): Promise<Buffer> {
    const record = await this.recordOf(node);
    if (record.isDirectory) throw new UsageError(`${this.where}: ${node.path} is a directory`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new UsageError(`${node.path}: bad read of ${length} bytes at ${offset}`);
    const end = Math.min(record.size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    const runs = await this.chainOf(record);
    const clusterSize = this.geometry.clusterSize;
    const parts: Buffer[] = [];
    let runFileStart = 0;
    for (const run of runs) {
      const runFileEnd = runFileStart + run.count * clusterSize;
      const start = Math.max(offset, runFileStart);
      const stop = Math.min(end, runFileEnd);
      if (start < stop)
        parts.push(await this.reader.read(this.table.clusterOffset(run.first) + (start - runFileStart), stop - start));
      if (runFileEnd >= end) break;
      runFileStart = runFileEnd;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  async readlink(node: FileNode): Promise<string> {
    throw new UsageError(`${this.where}: ${node.path} is not a symbolic link (FAT has none)`);
  }

  async xattrs(_node: FileNode): Promise<Map<string, Buffer>> {
    return new Map();
  }

  private nodeOf(record: FatRecord, path: string): FileNode {
    return { path, inode: record.inode, stat: { ...record.stat } };
  }

  private async recordOf(node: FileNode): Promise<FatRecord> {
    const record = this.records.get(node.inode);
    if (record) return record;
    return this.records.get((await this.lookup(node.path)).inode)!;
  }

  private async chainOf(record: FatRecord): Promise<ClusterRun[]> {
    if (record.size === 0) return [];
    const cached = this.chains.get(record.inode);
    if (cached) return cached;
    const runs = await this.table.chain(
      record.firstCluster,
      Math.ceil(record.size / this.geometry.clusterSize),
      record.path,
    );
    if (this.chains.size >= CACHED_CHAINS) this.chains.delete(this.chains.keys().next().value!);
    this.chains.set(record.inode, runs);
    return runs;
  }

  private async listing(directory: FatRecord): Promise<{ entries: FatDirEntry[]; records: FatRecord[] }> {
    const cached = this.listings.get(directory.inode);
    if (cached) return cached;
    if (directory.firstCluster !== 0) {
      // FAT has no hard links: a directory starting where another one does is damage, and
      // following it could lead back into its own ancestors forever.
      const owner = this.directoryClusters.get(directory.firstCluster);
      if (owner && owner.inode !== directory.inode) {
        throw new FormatError(
          `${this.where}: directory ${directory.path} starts at cluster ${directory.firstCluster}, which belongs to directory ${owner.path}`,
        );
      }
      this.directoryClusters.set(directory.firstCluster, directory);
    }
    const { bytes, pieces } = await readDirectoryBytes(
      this.reader,
      this.geometry,
      this.table,
      directory.firstCluster,
      directory.path,
    );
    const entries = parseDirectory(bytes, pieces, this.geometry, this.where, directory.path);
    const records = entries.map((entry) => {
      const inode = entry.entryOffset / 32;
      const record: FatRecord = {
        path: joinPath(directory.path, entry.name),
        inode,
        isDirectory: entry.isDirectory,
        firstCluster: entry.firstCluster,
        size: entry.size,
        stat: statOf(entry, inode),
      };
      this.records.set(inode, record);
      return record;
    });
    const listing = { entries, records };
    this.listings.set(directory.inode, listing);
    return listing;
  }
}
