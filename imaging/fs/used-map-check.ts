// The cross-check of a filesystem's used-block map against the structures its module
// parses anyway: metadata the map marks free means the map itself is damaged, so the
// volume is captured raw; blocks that in-use files reference but the map marks free are
// captured anyway. Each module says what its metadata and references are; this file
// only compares them with the map and words the warnings.
import type { CaptureMethod } from '../../src/format/manifest.js';
import { RangeList, type Range } from '../ranges.js';

/** What capture reads of a volume, after the cross-check. */
export interface CaptureMap {
  method: CaptureMethod;
  /** Byte ranges, relative to the volume start, to read; everything else is captured as zeros. */
  ranges: RangeList;
  warnings: string[];
}

/** How a module names itself, its map and its allocation unit in warnings. */
export interface MapWording {
  /** Filesystem type and volume: "ext4 on /dev/sdb p2". */
  volume: string;
  /** The map: "the block bitmap", "$Bitmap", "the FAT". */
  map: string;
  /** The allocation unit: "block", "cluster". */
  unit: string;
  unitSize: number;
  /** The number of the unit at a byte offset, where it is not offset / unitSize (FAT counts clusters from the data area, from 2). */
  unitAt?: (offset: number) => number;
  /** Who references blocks: "inode", "MFT record", "file". */
  owner: string;
}

/** A structure the filesystem cannot do without, by name and byte range. */
export interface MetadataRegion {
  name: string;
  start: number;
  end: number;
}

/** How many owners and skipped references a warning names before it says "and N more". */
const NAMED_IN_WARNING = 8;

/** The parts of [start, end) that `used` does not cover (binary search over its sorted ranges). */
export function freeParts(used: RangeList, start: number, end: number): Range[] {
  const ranges = used.ranges;
  let low = 0;
  let high = ranges.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (ranges[middle]![1] <= start) low = middle + 1;
    else high = middle;
  }
  const free: Range[] = [];
  let from = start;
  for (let index = low; index < ranges.length && from < end; index++) {
    const [rangeStart, rangeEnd] = ranges[index]!;
    if (rangeStart >= end) break;
    if (rangeStart > from) free.push([from, rangeStart]);
    from = Math.max(from, rangeEnd);
  }
  if (from < end) free.push([from, end]);
  return free;
}

/**
 * The first metadata region the map marks (partly) free, worded as the warning that
 * sends the volume to raw capture; null when every region is marked used.
 */
export function metadataMarkedFree(
  used: RangeList,
  regions: readonly MetadataRegion[],
  wording: MapWording,
): string | null {
  for (const region of regions) {
    const free = freeParts(used, region.start, region.end);
    if (free.length === 0) continue;
    const offset = free[0]![0];
    const unit = wording.unitAt ? wording.unitAt(offset) : Math.floor(offset / wording.unitSize);
    return `${wording.volume}: ${wording.map} marks ${wording.unit} ${unit} (${region.name}) free; the allocation bitmap is damaged, capturing every block (raw)`;
  }
  return null;
}

/**
 * The cross-check as every module runs it: metadata the map marks free sends the volume
 * to raw capture; otherwise `collect` reports what in-use files reference, and the map
 * gains what it marked free.
 */
export async function crossCheckMap(
  used: RangeList,
  volumeSize: number,
  wording: MapWording,
  metadata: MetadataRegion[],
  collect: (referenced: ReferencedBlocks) => Promise<void>,
): Promise<CaptureMap> {
  const damaged = metadataMarkedFree(used, metadata, wording);
  if (damaged) return rawCaptureMap(volumeSize, [damaged]);
  const referenced = new ReferencedBlocks(used, volumeSize, wording);
  await collect(referenced);
  return referenced.captureMap();
}

/** The capture map of a volume whose used-block map cannot be trusted. */
export function rawCaptureMap(size: number, warnings: string[]): CaptureMap {
  return { method: 'raw', ranges: RangeList.full(size), warnings };
}

function nameSome(items: readonly (string | number)[], total: number): string {
  const named = items.slice(0, NAMED_IN_WARNING).join(', ');
  return total > NAMED_IN_WARNING ? `${named} and ${total - NAMED_IN_WARNING} more` : named;
}

/**
 * Collects the byte ranges that in-use files reference, keeps those the map marks free,
 * and the references too damaged to follow (skipped, never fatal).
 */
export class ReferencedBlocks {
  private readonly extra: Range[] = [];
  private readonly owners = new Set<string | number>();
  private readonly skipped: string[] = [];
  private skippedCount = 0;
  private freeBytes = 0;

  constructor(
    private readonly used: RangeList,
    private readonly volumeSize: number,
    private readonly wording: MapWording,
  ) {}

  /** `owner` references bytes [start, end) of the volume. */
  reference(owner: string | number, start: number, end: number): void {
    if (!(start >= 0 && end <= this.volumeSize && start < end)) {
      this.skip(`${this.wording.owner} ${owner}: bytes ${start}-${end} are outside the volume`);
      return;
    }
    const free = freeParts(this.used, start, end);
    if (free.length === 0) return;
    for (const part of free) {
      this.extra.push(part);
      this.freeBytes += part[1] - part[0];
    }
    this.owners.add(owner);
  }

  /** A reference that could not be followed (a block beyond the volume, a loop in a chain). */
  skip(problem: string): void {
    this.skippedCount++;
    if (this.skipped.length < NAMED_IN_WARNING) this.skipped.push(problem);
  }

  /** The map with every referenced range added. */
  ranges(): RangeList {
    return this.extra.length === 0 ? this.used : RangeList.of([...this.used.ranges, ...this.extra]);
  }

  /** The used-blocks capture map: the map with every referenced range, and the warnings. */
  captureMap(): CaptureMap {
    return { method: 'used-blocks', ranges: this.ranges(), warnings: this.warnings() };
  }

  warnings(): string[] {
    const { volume, map, unit, unitSize, owner } = this.wording;
    const warnings: string[] = [];
    if (this.owners.size > 0) {
      const extra = RangeList.of(this.extra);
      const units = extra.ranges.reduce(
        (sum, [start, end]) => sum + Math.ceil(end / unitSize) - Math.floor(start / unitSize),
        0,
      );
      const owners = [...this.owners];
      warnings.push(
        `${volume}: ${units} ${unit}${units === 1 ? '' : 's'} referenced by ${owner}${owners.length === 1 ? '' : 's'} ${nameSome(owners, owners.length)} ${units === 1 ? 'is' : 'are'} marked free in ${map}; captured anyway`,
      );
    }
    if (this.skippedCount > 0) {
      warnings.push(
        `${volume}: ${this.skippedCount} damaged reference${this.skippedCount === 1 ? '' : 's'} could not be checked against ${map} and ${this.skippedCount === 1 ? 'was' : 'were'} skipped (${nameSome(this.skipped, this.skippedCount)})`,
      );
    }
    return warnings;
  }
}
