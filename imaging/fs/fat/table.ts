// The file allocation table: which clusters are in use (for the used-block map) and the
// cluster chains of files and directories (for file access), read from the active FAT copy.
// The table is read in large pieces and cached by the megabyte, never entry by entry.
import { FormatError } from '../../../src/core/errors.js';
import type { BlockReader } from '../../block-reader.js';
import type { Range } from '../../ranges.js';
import type { FatGeometry } from './boot-sector.js';

/** A run of consecutive clusters of one chain. */
export interface ClusterRun {
  first: number;
  count: number;
}

export interface ClusterUsage {
  /** Byte ranges of every cluster whose entry is neither free nor marked bad, merged. */
  ranges: Range[];
  usedClusters: number;
  badClusters: number;
}

/** FAT32 pages are cached at this size; FAT12/16 tables (at most 128 KiB) are read whole. */
const PAGE_BYTES = 1 << 20;
const MAX_CACHED_PAGES = 16;
/** Scanning the whole table for the used-block map goes in runs of this size. */
const SCAN_BYTES = 4 << 20;
/** The specification caps a directory at 65536 entries of 32 bytes. */
const MAX_DIRECTORY_BYTES = 65536 * 32;

export class FatTable {
  private readonly pages = new Map<number, Buffer>();
  /** Entries 0 .. clusterCount + 1 occupy this many bytes of each FAT copy. */
  private readonly tableBytes: number;
  private readonly pageBytes: number;
  /** Entry values: this one marks a bad cluster, this one and above end a chain. */
  readonly badMark: number;
  readonly endOfChain: number;
  readonly lastCluster: number;

  constructor(
    private readonly reader: BlockReader,
    private readonly geometry: FatGeometry,
  ) {
    const { fatType, clusterCount } = geometry;
    this.tableBytes = Math.ceil(((clusterCount + 2) * fatType) / 8);
    this.pageBytes = fatType === 32 ? PAGE_BYTES : this.tableBytes;
    this.badMark = fatType === 12 ? 0xff7 : fatType === 16 ? 0xfff7 : 0x0ffffff7;
    this.endOfChain = this.badMark + 1;
    this.lastCluster = clusterCount + 1;
  }

  /** Byte offset, in the volume, of the active FAT copy. */
  get activeFatOffset(): number {
    return this.geometry.fatOffset + this.geometry.activeFat * this.geometry.fatBytes;
  }

  /** Byte offset, in the volume, of the entry of `cluster` (for error messages). */
  entryOffset(cluster: number): number {
    return this.activeFatOffset + Math.floor((cluster * this.geometry.fatType) / 8);
  }

  /** Byte offset, in the volume, of the first byte of `cluster`. */
  clusterOffset(cluster: number): number {
    return this.geometry.dataOffset + (cluster - 2) * this.geometry.clusterSize;
  }

  isCluster(value: number): boolean {
    return value >= 2 && value <= this.lastCluster;
  }

  async entry(cluster: number): Promise<number> {
    const value = this.cachedEntry(cluster);
    if (value >= 0) return value;
    await this.loadPage(this.pageOf(cluster));
    return this.cachedEntry(cluster);
  }

  /** The entry, or -1 when its page is not in memory. */
  private cachedEntry(cluster: number): number {
    const { fatType } = this.geometry;
    if (fatType === 32) {
      const byte = cluster * 4;
      const page = this.pages.get(Math.floor(byte / this.pageBytes));
      if (!page) return -1;
      // The top four bits of a FAT32 entry are reserved and must be ignored.
      return page.readUInt32LE(byte % this.pageBytes) & 0x0fffffff;
    }
    const table = this.pages.get(0);
    if (!table) return -1;
    if (fatType === 16) return table.readUInt16LE(cluster * 2);
    const pair = table.readUInt16LE(Math.floor((cluster * 3) / 2));
    return cluster & 1 ? pair >> 4 : pair & 0x0fff;
  }

  private pageOf(cluster: number): number {
    return this.geometry.fatType === 32 ? Math.floor((cluster * 4) / this.pageBytes) : 0;
  }

  private async loadPage(page: number): Promise<void> {
    const start = page * this.pageBytes;
    const bytes = await this.reader.read(
      this.activeFatOffset + start,
      Math.min(this.pageBytes, this.tableBytes - start),
    );
    if (this.pages.size >= MAX_CACHED_PAGES) this.pages.delete(this.pages.keys().next().value!);
    this.pages.set(page, bytes);
  }

  /**
   * The runs of a chain starting at `first`. A file's chain is followed for `clusters`
   * clusters (what its size needs; a longer chain is tolerated, as Linux does); a
   * directory's (`clusters` null) to its end. `what` names the owner in errors.
   */
  async chain(first: number, clusters: number | null, what: string): Promise<ClusterRun[]> {
    const where = `${this.reader.description}: ${what}`;
    if (!this.isCluster(first))
      throw new FormatError(`${where}: first cluster ${first} is outside clusters 2..${this.lastCluster}`);
    const limit = clusters ?? Math.ceil(MAX_DIRECTORY_BYTES / this.geometry.clusterSize);
    const visited = new VisitedClusters(this.lastCluster);
    const runs: ClusterRun[] = [];
    let cluster = first;
    let previous = first;
    let count = 0;
    for (;;) {
      if (visited.has(cluster))
        throw new FormatError(
          `${where}: cluster chain loops back to cluster ${cluster} after ${count} clusters (FAT entry at byte ${this.entryOffset(previous)})`,
        );
      visited.add(cluster);
      const last = runs[runs.length - 1];
      if (last && last.first + last.count === cluster) last.count++;
      else runs.push({ first: cluster, count: 1 });
      count++;
      if (clusters !== null && count >= clusters) return runs;
      if (clusters === null && count > limit)
        throw new FormatError(
          `${where}: directory chain is longer than ${limit} clusters, the most 65536 entries can need`,
        );
      // Most entries are in a cached page: no await for them.
      let next = this.cachedEntry(cluster);
      if (next < 0) next = await this.entry(cluster);
      if (next >= this.endOfChain) {
        if (clusters !== null)
          throw new FormatError(
            `${where}: cluster chain ends after ${count} of the ${clusters} clusters its size needs (FAT entry at byte ${this.entryOffset(cluster)})`,
          );
        return runs;
      }
      if (!this.isCluster(next)) {
        const problem =
          next === 0
            ? 'a free cluster'
            : next === this.badMark
              ? 'a cluster marked bad'
              : `cluster ${next}, outside clusters 2..${this.lastCluster}`;
        throw new FormatError(
          `${where}: cluster chain leads from cluster ${cluster} to ${problem} (FAT entry at byte ${this.entryOffset(cluster)})`,
        );
      }
      previous = cluster;
      cluster = next;
    }
  }

  /** Scan every entry of the active FAT for the clusters in use. */
  async clusterUsage(): Promise<ClusterUsage> {
    const usage: ClusterUsage = { ranges: [], usedClusters: 0, badClusters: 0 };
    let runStart = -1;
    const visit = (cluster: number, value: number) => {
      // Bad clusters hold nothing a file refers to, and reading them is what fails on a
      // dying disk; they are left out and read back as zeros. The FAT copy keeps the bad
      // mark, so the restored filesystem goes on avoiding them.
      const used = value !== 0 && value !== this.badMark;
      if (value === this.badMark) usage.badClusters++;
      if (used) {
        usage.usedClusters++;
        if (runStart < 0) runStart = cluster;
      } else if (runStart >= 0) {
        usage.ranges.push([this.clusterOffset(runStart), this.clusterOffset(cluster)]);
        runStart = -1;
      }
    };
    if (this.geometry.fatType === 32) {
      for (let start = 0; start < this.tableBytes; start += SCAN_BYTES) {
        const bytes = await this.reader.read(
          this.activeFatOffset + start,
          Math.min(SCAN_BYTES, this.tableBytes - start),
        );
        const firstEntry = start / 4;
        for (let index = firstEntry < 2 ? 2 - firstEntry : 0; index * 4 < bytes.length; index++) {
          visit(firstEntry + index, bytes.readUInt32LE(index * 4) & 0x0fffffff);
        }
      }
    } else {
      if (!this.pages.has(0)) await this.loadPage(0);
      for (let cluster = 2; cluster <= this.lastCluster; cluster++) visit(cluster, this.cachedEntry(cluster));
    }
    if (runStart >= 0) usage.ranges.push([this.clusterOffset(runStart), this.clusterOffset(this.lastCluster + 1)]);
    return usage;
  }

  /** FAT16/32 keep "cleanly unmounted" and "no I/O error" bits in entry 1. */
  async volumeFlags(): Promise<{ dirty: boolean; hadErrors: boolean } | null> {
    const { fatType } = this.geometry;
    if (fatType === 12) return null;
    const value = await this.entry(1);
    const clean = fatType === 16 ? 0x8000 : 0x08000000;
    const noErrors = fatType === 16 ? 0x4000 : 0x04000000;
    return { dirty: (value & clean) === 0, hadErrors: (value & noErrors) === 0 };
  }
}

/** Clusters seen while following one chain: a Set for short chains, a bitmap for long ones. */
class VisitedClusters {
  private set: Set<number> | null = new Set();
  private bitmap: Uint8Array | null = null;
  constructor(private readonly lastCluster: number) {}

  has(cluster: number): boolean {
    if (this.set) return this.set.has(cluster);
    return (this.bitmap![cluster >> 3]! & (1 << (cluster & 7))) !== 0;
  }

  add(cluster: number): void {
    if (this.set) {
      this.set.add(cluster);
      if (this.set.size < 16384) return;
      this.bitmap = new Uint8Array((this.lastCluster >> 3) + 1);
      for (const seen of this.set) this.bitmap[seen >> 3]! |= 1 << (seen & 7);
      this.set = null;
      return;
    }
    this.bitmap![cluster >> 3]! |= 1 << (cluster & 7);
  }
}
