// The FAT checked against the directory tree: the FAT32 root directory's chain must be
// marked used, or the table is damaged and the volume is captured raw (the reserved
// sectors, the FATs and the FAT12/16 root sit before the data area and are always
// read); clusters that directory entries reach but the FAT marks free are captured
// anyway. Chains are followed leniently here: a free entry ends a chain (that cluster
// still counts as referenced), a loop or a cluster out of range is skipped with a warning.
import { FormatError } from '../../../src/core/errors.js';
import type { BlockReader } from '../../block-reader.js';
import type { RangeList } from '../../ranges.js';
import {
  metadataMarkedFree,
  rawCaptureMap,
  ReferencedBlocks,
  type CaptureMap,
  type MapWording,
} from '../used-map-check.js';
import type { FatGeometry } from './boot-sector.js';
import { parseDirectory, type DirectoryPiece } from './directory.js';
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

export async function checkFileAllocationTable(
  reader: BlockReader,
  geometry: FatGeometry,
  table: FatTable,
  used: RangeList,
): Promise<CaptureMap> {
  const wording: MapWording = {
    volume: `vfat on ${reader.description}`,
    map: 'the FAT',
    unit: 'cluster',
    unitSize: geometry.clusterSize,
    unitAt: (offset) => 2 + Math.floor((offset - geometry.dataOffset) / geometry.clusterSize),
    owner: 'file',
  };
  const clusterRegion = (cluster: number, name: string) => ({
    name,
    start: table.clusterOffset(cluster),
    end: table.clusterOffset(cluster) + geometry.clusterSize,
  });
  const directoryLimit = Math.ceil(MAX_DIRECTORY_BYTES / geometry.clusterSize);

  let root: LenientChain | null = null;
  if (geometry.fatType === 32) {
    root = await followChain(table, geometry.rootCluster, directoryLimit, false);
    const damaged = metadataMarkedFree(
      used,
      root.clusters.map((cluster) => clusterRegion(cluster, 'root directory')),
      wording,
    );
    if (damaged) return rawCaptureMap(reader.size, [damaged]);
  }

  const referenced = new ReferencedBlocks(used, reader.size, wording);
  const referenceChain = (owner: string, chain: LenientChain) => {
    for (const cluster of chain.clusters)
      referenced.reference(owner, table.clusterOffset(cluster), table.clusterOffset(cluster) + geometry.clusterSize);
    if (chain.problem) referenced.skip(`${owner}: ${chain.problem}`);
  };
  const visitedDirectories = new Set<number>(root ? [geometry.rootCluster] : []);
  const visitDirectory = async (path: string, chain: LenientChain | null, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) return referenced.skip(`${path}: directories nested deeper than ${MAX_DEPTH}`);
    const pieces: DirectoryPiece[] = chain
      ? chain.clusters.map((cluster) => ({ volumeOffset: table.clusterOffset(cluster), length: geometry.clusterSize }))
      : [{ volumeOffset: geometry.rootDirOffset, length: geometry.rootDirBytes }];
    try {
      const parts: Buffer[] = [];
      for (const piece of pieces) parts.push(await reader.read(piece.volumeOffset, piece.length));
      const entries = parseDirectory(Buffer.concat(parts), pieces, geometry, reader.description, path);
      for (const entry of entries) {
        if (entry.firstCluster === 0) continue;
        const entryPath = path === '/' ? `/${entry.name}` : `${path}/${entry.name}`;
        const limit = entry.isDirectory ? directoryLimit : Math.ceil(entry.size / geometry.clusterSize);
        if (limit === 0) continue;
        const entryChain = await followChain(table, entry.firstCluster, limit, !entry.isDirectory);
        referenceChain(entryPath, entryChain);
        // A directory met twice is a cross-link or a cycle: its entries were counted already.
        if (!entry.isDirectory || visitedDirectories.has(entry.firstCluster)) continue;
        visitedDirectories.add(entry.firstCluster);
        await visitDirectory(entryPath, entryChain, depth + 1);
      }
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      referenced.skip(error.message);
    }
  };
  if (root) referenceChain('/', root);
  await visitDirectory('/', root, 0);
  return { method: 'used-blocks', ranges: referenced.ranges(), warnings: referenced.warnings() };
}
