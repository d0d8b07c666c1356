// Sorted, non-overlapping byte ranges [start, end): which parts of a volume hold
// data worth reading (used by the filesystem, not a hole of a sparse file).

export type Range = readonly [start: number, end: number];

export class RangeList {
  private constructor(readonly ranges: readonly Range[]) {}

  static of(ranges: Iterable<Range>): RangeList {
    const sorted = [...ranges].filter(([start, end]) => end > start).sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const [start, end] of sorted) {
      const last = merged[merged.length - 1];
      if (last && start <= last[1]) last[1] = Math.max(last[1], end);
      else merged.push([start, end]);
    }
    return new RangeList(merged);
  }

  static full(size: number): RangeList {
    return new RangeList(size > 0 ? [[0, size]] : []);
  }

  get totalBytes(): number {
    return this.ranges.reduce((sum, [start, end]) => sum + (end - start), 0);
  }

  intersect(other: RangeList): RangeList {
    const result: Range[] = [];
    let i = 0;
    let j = 0;
    while (i < this.ranges.length && j < other.ranges.length) {
      const [aStart, aEnd] = this.ranges[i]!;
      const [bStart, bEnd] = other.ranges[j]!;
      const start = Math.max(aStart, bStart);
      const end = Math.min(aEnd, bEnd);
      if (end > start) result.push([start, end]);
      if (aEnd < bEnd) i++;
      else j++;
    }
    return new RangeList(result);
  }

  /** What this list covers that `other` does not. */
  subtract(other: RangeList): RangeList {
    const result: Range[] = [];
    let j = 0;
    for (const [start, end] of this.ranges) {
      let from = start;
      while (j < other.ranges.length && other.ranges[j]![1] <= from) j++;
      let k = j;
      while (k < other.ranges.length && other.ranges[k]![0] < end) {
        const [cutStart, cutEnd] = other.ranges[k]!;
        if (cutStart > from) result.push([from, Math.min(cutStart, end)]);
        from = Math.max(from, cutEnd);
        if (from >= end) break;
        k++;
      }
      if (from < end) result.push([from, end]);
    }
    return new RangeList(result);
  }

  /** The same ranges moved by `delta` bytes. */
  shift(delta: number): RangeList {
    return new RangeList(this.ranges.map(([start, end]) => [start + delta, end + delta] as const));
  }

  /** A cursor for walking the list window by window in increasing order. */
  cursor(): RangeCursor {
    return new RangeCursor(this.ranges);
  }
}

export class RangeCursor {
  private position = 0;
  constructor(private readonly ranges: readonly Range[]) {}

  /** Parts of [start, end) covered by the list, relative to `start`. Windows must not go backwards. */
  within(start: number, end: number): Range[] {
    while (this.position < this.ranges.length && this.ranges[this.position]![1] <= start) this.position++;
    const parts: Range[] = [];
    for (let index = this.position; index < this.ranges.length; index++) {
      const [rangeStart, rangeEnd] = this.ranges[index]!;
      if (rangeStart >= end) break;
      parts.push([Math.max(rangeStart, start) - start, Math.min(rangeEnd, end) - start]);
    }
    return parts;
  }
}
