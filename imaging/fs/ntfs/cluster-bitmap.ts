// $Bitmap: one bit per cluster, set when the cluster is allocated. Turned into runs
// of used clusters a word at a time, since volumes have millions of clusters.

/**
 * Append the runs of set bits in `bitmap` (whose first bit is cluster `firstCluster`)
 * to `runs` as [firstCluster, endCluster), joining a run that continues the last one.
 * Bits at or past `clusterCount` are ignored.
 */
export function addUsedClusterRuns(
  runs: Array<[number, number]>,
  bitmap: Buffer,
  firstCluster: number,
  clusterCount: number,
): void {
  const bits = Math.max(0, Math.min(clusterCount - firstCluster, bitmap.length * 8));
  const push = (start: number, end: number): void => {
    const last = runs[runs.length - 1];
    if (last && last[1] === firstCluster + start) last[1] = firstCluster + end;
    else runs.push([firstCluster + start, firstCluster + end]);
  };
  let runStart = -1;
  let bit = 0;
  while (bit < bits) {
    // Whole 32-bit words that are all clear or all set move the scan 32 clusters on.
    if ((bit & 31) === 0 && bit + 32 <= bits) {
      const word = bitmap.readUInt32LE(bit >>> 3);
      if (word === 0) {
        if (runStart >= 0) {
          push(runStart, bit);
          runStart = -1;
        }
        bit += 32;
        continue;
      }
      if (word === 0xffffffff) {
        if (runStart < 0) runStart = bit;
        bit += 32;
        continue;
      }
    }
    const set = (bitmap[bit >>> 3]! >> (bit & 7)) & 1;
    if (set && runStart < 0) runStart = bit;
    else if (!set && runStart >= 0) {
      push(runStart, bit);
      runStart = -1;
    }
    bit++;
  }
  if (runStart >= 0) push(runStart, bits);
}
