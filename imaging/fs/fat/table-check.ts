// The FAT checked against the directory tree: the FAT32 root directory's chain must be
// marked used, or the table is damaged and the volume is captured raw (the reserved
// sectors, the FATs and the FAT12/16 root sit before the data area and are always
// read); clusters that directory entries reach but the FAT marks free are captured
// anyway. Chains are followed leniently here: a free entry ends a chain (that cluster
// still counts as referenced), a loop or a cluster out of range is skipped with a warning.
import { FormatError } from '../../../src/core/errors.js';
import type { BlockReader } from '../../block-reader.js';
import type { RangeList } from '../../ranges.js';
import { type CaptureMap, crossCheckMap, type ReferencedBlocks } from '../used-map-check.js';
import type { FatGeometry } from './boot-sector.js';
import { type DirectoryPiece, type FatDirEntry, parseDirectory } from './directory.js';
import type { FatTable } from './table.js';

/** Directories nested deeper than this are damage (a cycle through mismatched entries). */
const MAX_DEPTH = 64;
/** The specification caps a directory at 65536 entries of 32 bytes. */
const MAX_DIRECTORY_BYTES = 65536 * 32;

interface LenientChain {
  clusters: number[];
  problem: string | null;
}

/**
 * The clusters of a chain as far as it can be followed; `limit` clusters at most. A
 * chain cut short by a free entry most likely went on in the clusters right after (as
 * files are written): those that are free too are kept for what the size still needs,
 * so that a repair can find them in the restored copy as it could in the source.
 */
async function followChain(table: FatTable, first: number, limit: number, isFile: boolean): Promise<LenientChain> {
  const clusters: number[] = [];
  const seen = new Set<number>();
  let cluster = first;
  while (clusters.length < limit) {
    if (!table.isCluster(cluster))
      return { clusters, problem: `cluster ${cluster} is outside clusters 2..${table.lastCluster}` };
    if (seen.has(cluster)) return { clusters, problem: `the chain loops back to cluster ${cluster}` };
    seen.add(cluster);
    clusters.push(cluster);
    const next = await table.entry(cluster);
    if (next === 0) {
      if (isFile) {
        for (
          let following = cluster + 1;
          clusters.length < limit && table.isCluster(following) && (await table.entry(following)) === 0;
          following++
        )
          clusters.push(following);
      }
      break;
    }
    if (next >= table.endOfChain || next === table.badMark) break;
    cluster = next;
  }
  return { clusters, problem: null };
}

/** Walks the directory tree from the root, reporting every chain an entry reaches to `referenced`. */
class DirectoryWalk {
  private readonly visitedDirectories = new Set<number>();
  private readonly directoryLimit: number;

  constructor(
    private readonly reader: BlockReader,
    private readonly geometry: FatGeometry,
    private readonly table: FatTable,
    private readonly referenced: ReferencedBlocks,
  ) {
    this.directoryLimit = Math.ceil(MAX_DIRECTORY_BYTES / geometry.clusterSize);
  }

  /** `root` is the FAT32 root directory's chain, null for the fixed FAT12/16 root region. */
  async run(root: LenientChain | null): Promise<void> {
    if (root) {
      this.visitedDirectories.add(this.geometry.rootCluster);
      this.referenceChain('/', root);
    }
    await this.visitDirectory('/', root, 0);
  }

  private referenceChain(owner: string, chain: LenientChain): void {
    const { clusterSize } = this.geometry;
    for (const cluster of chain.clusters)
      this.referenced.reference(
        owner,
        this.table.clusterOffset(cluster),
        this.table.clusterOffset(cluster) + clusterSize,
      );
    if (chain.problem) this.referenced.skip(`${owner}: ${chain.problem}`);
  }

  private async visitDirectory(path: string, chain: LenientChain | null, depth: number): Promise<void> {
    if (depth > MAX_DEPTH) return this.referenced.skip(`${path}: directories nested deeper than ${MAX_DEPTH}`);
    const { geometry, table } = this;
    const pieces: DirectoryPiece[] = chain
      ? chain.clusters.map((cluster) => ({ volumeOffset: table.clusterOffset(cluster), length: geometry.clusterSize }))
      : [{ volumeOffset: geometry.rootDirOffset, length: geometry.rootDirBytes }];
    try {
      const parts: Buffer[] = [];
      for (const piece of pieces) parts.push(await this.reader.read(piece.volumeOffset, piece.length));
      const entries = parseDirectory(Buffer.concat(parts), pieces, geometry, this.reader.description, path);
      for (const entry of entries)
        await this.visitEntry(path === '/' ? `/${entry.name}` : `${path}/${entry.name}`, entry, depth);
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      this.referenced.skip(error.message);
    }
  }

  private async visitEntry(entryPath: string, entry: FatDirEntry, depth: number): Promise<void> {
    if (entry.firstCluster === 0) return;
    const limit = entry.isDirectory ? this.directoryLimit : Math.ceil(entry.size / this.geometry.clusterSize);
    if (limit === 0) return;
    const entryChain = await followChain(this.table, entry.firstCluster, limit, !entry.isDirectory);
    this.referenceChain(entryPath, entryChain);
    // A directory met twice is a cross-link or a cycle: its entries were counted already.
    if (!entry.isDirectory || this.visitedDirectories.has(entry.firstCluster)) return;
    this.visitedDirectories.add(entry.firstCluster);
    await this.visitDirectory(entryPath, entryChain, depth + 1);
  }
}

export async function checkFileAllocationTable(
  reader: BlockReader,
  geometry: FatGeometry,
  table: FatTable,
  used: RangeList,
): Promise<CaptureMap> {
  const wording = {
    volume: `vfat on ${reader.description}`,
    map: 'the FAT',
    unit: 'cluster',
    unitSize: geometry.clusterSize,
    unitAt: (offset: number) => 2 + Math.floor((offset - geometry.dataOffset) / geometry.clusterSize),
    owner: 'file',
  };
  const directoryLimit = Math.ceil(MAX_DIRECTORY_BYTES / geometry.clusterSize);
  // The FAT32 root directory lives in clusters: the FAT must mark them used.
  const root = geometry.fatType === 32 ? await followChain(table, geometry.rootCluster, directoryLimit, false) : null;
  const rootRegions = (root?.clusters ?? []).map((cluster) => ({
    name: 'root directory',
    start: table.clusterOffset(cluster),
    end: table.clusterOffset(cluster) + geometry.clusterSize,
  }));
  return crossCheckMap(used, reader.size, wording, rootRegions, (referenced) =>
    new DirectoryWalk(reader, geometry, table, referenced).run(root),
  );
}
