// The proof that an ext used-block map is right, for one mke2fs variant: it matches
// dumpe2fs group by group, and a copy holding only the used ranges passes e2fsck and
// mounts with every file intact.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Test } from 'tap';
import { extFilesystem } from '../../../imaging/fs/ext.js';
import { RangeList } from '../../../imaging/ranges.js';
import { execa } from 'execa';
import {
  dumpe2fs,
  e2fsckReadOnly,
  hashTree,
  largePattern,
  makeExtImage,
  MiB,
  openReader,
  patternBytes,
  withMounted,
} from './ext-fixtures.js';
import { copyRanges } from '../../helpers/ranges.js';
import { blkid } from '../../helpers/blkid.js';

export interface Variant {
  name: string;
  type: 'ext2' | 'ext3' | 'ext4';
  size: number;
  options: string[];
  /** Extra work after the standard fill (e.g. deleting files). */
  after?: (root: string) => Promise<void>;
}

/** A mix of contents: large files in several directories, many small ones, a symlink. */
export async function standardFill(root: string, seed: number): Promise<void> {
  for (let index = 0; index < 6; index++) {
    const directory = path.join(root, `dir${index}`);
    await fs.mkdir(directory, { recursive: true });
    await fs.writeFile(path.join(directory, 'large.bin'), largePattern(seed * 100 + index, (3 + index) * MiB + 1234));
    for (let small = 0; small < 40; small++)
      await fs.writeFile(
        path.join(directory, `small-${small}.txt`),
        patternBytes(seed * 1000 + small, 100 + small * 97),
      );
  }
  await fs.symlink('dir0/large.bin', path.join(root, 'link'));
}

/** Free clusters per group from our map: the complement of the used ranges inside each group. */
function freeClusterRanges(used: RangeList, clusterSize: number, first: number, last: number): [number, number][] {
  const free: [number, number][] = [];
  let position = first;
  for (const [start, end] of used.ranges) {
    const startCluster = Math.floor(start / clusterSize);
    const endCluster = Math.ceil(end / clusterSize) - 1;
    if (endCluster < first) continue;
    if (startCluster > last) break;
    if (startCluster > position) free.push([position, Math.min(startCluster - 1, last)]);
    position = Math.max(position, endCluster + 1);
  }
  if (position <= last) free.push([position, last]);
  return free;
}

export async function checkUsedBlocks(t: Test, variant: Variant): Promise<void> {
  const image = await makeExtImage(t, variant.type, variant.size, variant.options);
  const expected = await withMounted(t, image, async (root) => {
    await standardFill(root, variant.size % 997);
    if (variant.after) await variant.after(root);
    return hashTree(root);
  });

  const reader = await openReader(t, image);
  t.equal(await extFilesystem.detect(reader), true, 'detected');
  const started = performance.now();
  const opened = await extFilesystem.open(reader);
  const used = await opened.usedRanges();
  const elapsed = performance.now() - started;
  t.comment(`${variant.name}: open and used map in ${elapsed.toFixed(1)} ms, ${used.ranges.length} ranges`);
  t.ok(elapsed < 1000, 'the used map of a filesystem of up to 1 GiB takes well under a second');
  t.same(opened.warnings, [], 'no warnings for a cleanly unmounted filesystem');

  const probe = await blkid(image);
  t.equal(opened.info.type, probe.TYPE, `type is what blkid says (${probe.TYPE})`);
  t.equal(opened.info.uuid, probe.UUID, 'UUID as blkid prints it');
  t.equal(opened.info.label, probe.LABEL ?? null, 'label');

  const dump = await dumpe2fs(image);
  const blockCount = Number(dump.header.get('Block count'));
  const freeBlocks = Number(dump.header.get('Free blocks'));
  const blockSize = Number(dump.header.get('Block size'));
  // An empty journal's log (all but its superblock) is left out on purpose: put it back
  // to compare with the bitmaps dumpe2fs reads.
  let idle = RangeList.of([]);
  if (dump.header.get('Journal start') === '0') {
    // debugfs maps the journal: "(0-11):a-b, (IND):c, (12-1035):d-e..." (or EXTENTS);
    // its log is every mapped block but logical block 0, the journal superblock.
    const stat = (await execa('debugfs', ['-R', 'stat <8>', image], { stderr: 'ignore' })).stdout;
    const idleRanges: [number, number][] = [];
    for (const match of stat.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) {
      const logical = Number(match[1]);
      const physical = Number(match[3]);
      const last = Number(match[4] ?? match[3]);
      const from = logical === 0 ? physical + 1 : physical;
      if (from <= last) idleRanges.push([from * blockSize, (last + 1) * blockSize]);
    }
    idle = RangeList.of(idleRanges);
    t.same(used.intersect(idle).ranges, [], 'an empty journal log is not captured');
  }
  const bitmapUsed = RangeList.of([...used.ranges, ...idle.ranges]);
  t.same(opened.info.features, dump.header.get('Filesystem features')!.split(/\s+/), 'features as dumpe2fs names them');
  t.equal(opened.info.blockSize, blockSize, 'block size');
  t.equal(opened.info.totalBytes, blockCount * blockSize, 'total bytes = block count * block size');
  t.equal(opened.info.usedBytes, used.totalBytes, 'usedBytes is the size of the used map');
  t.equal(
    bitmapUsed.totalBytes / blockSize,
    blockCount - freeBlocks,
    `used blocks (with the journal log) = Block count - Free blocks (${blockCount} - ${freeBlocks})`,
  );

  // Group by group, the free ranges must be exactly those dumpe2fs lists.
  const clusterSize = Number(dump.header.get('Cluster size') ?? blockSize);
  const ratio = clusterSize / blockSize;
  let mismatches = 0;
  for (const group of dump.groups) {
    const ours = freeClusterRanges(
      bitmapUsed,
      clusterSize,
      Math.floor(group.first / ratio),
      Math.floor(group.last / ratio),
    );
    const theirs = group.free.map(([a, b]) => [Math.floor(a / ratio), Math.floor(b / ratio)]);
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) {
      mismatches++;
      if (mismatches <= 3)
        t.fail(`group ${group.number}: free clusters ${JSON.stringify(ours)}, dumpe2fs says ${JSON.stringify(theirs)}`);
    }
  }
  t.equal(mismatches, 0, `free ranges of all ${dump.groups.length} groups match dumpe2fs`);

  // Only the used ranges, in an otherwise zero file: e2fsck finds it clean and every file is intact.
  const copy = `${image}.used`;
  await copyRanges(image, copy, used);
  const check = await e2fsckReadOnly(copy);
  t.equal(
    check.exitCode,
    0,
    `e2fsck -fn on the copy of the used ranges is clean\n${check.exitCode === 0 ? '' : check.output}`,
  );
  const copied = await withMounted(t, copy, (root) => hashTree(root), { readOnly: true });
  t.same([...copied.entries()], [...expected.entries()], `all ${expected.size} paths read back with the same SHA-256`);
  await fs.rm(copy);
}
