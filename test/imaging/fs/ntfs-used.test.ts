// The used-range map of NTFS volumes, checked three ways: it equals the clusters
// partclone.ntfs copies plus the backup boot sector, its size agrees with ntfsinfo's
// free-cluster count, and a copy of only those ranges into zeros passes `ntfsfix -n`
// and mounts with ntfs-3g showing the same files with the same contents.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Prng, textLike, writeLargeDistinctFile } from '../../helpers/content.js';
import { GiB, MiB, run } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { RangeList } from '../../../imaging/ranges.js';
import { compareWalks, copyRanges, makeNtfsImage, ntfsfixCheck, ntfsinfoVolume, openNtfs, partcloneUsedRanges, walkMount, walkTree, withNtfsMount } from './ntfs-helpers.js';

interface Scenario {
  name: string;
  size: number;
  mkntfsArgs: string[];
  fill(root: string): Promise<void>;
}

/** Files written, then about half of them deleted: their clusters must not count. */
async function writeThenDelete(root: string): Promise<void> {
  const prng = new Prng(11);
  await fs.mkdir(path.join(root, 'kept'));
  await fs.mkdir(path.join(root, 'doomed'));
  for (let index = 0; index < 400; index++) {
    const size = (index * 7919) % 200000;
    await fs.writeFile(path.join(root, index % 2 ? 'kept' : 'doomed', `file-${index}`), textLike(prng, size));
  }
  await writeLargeDistinctFile(path.join(root, 'kept', 'large.bin'), 20 * MiB, 3);
  await writeLargeDistinctFile(path.join(root, 'doomed', 'large.bin'), 30 * MiB, 4);
  await fs.rm(path.join(root, 'doomed'), { recursive: true });
}

/**
 * Fill the volume with 64 KiB files, delete every other one, then write a file into
 * the holes: it ends up in hundreds of fragments, its runlist spread over extension
 * records named by an $ATTRIBUTE_LIST.
 */
async function fragment(root: string): Promise<void> {
  await fs.mkdir(path.join(root, 'fill'));
  const block = Buffer.alloc(64 * 1024, 'y');
  let count = 0;
  try {
    for (;;) {
      await fs.writeFile(path.join(root, 'fill', `f${String(count).padStart(5, '0')}`), block);
      count++;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  }
  for (let index = 0; index <= count; index += 2) await fs.rm(path.join(root, 'fill', `f${String(index).padStart(5, '0')}`), { force: true });
  await writeLargeDistinctFile(path.join(root, 'fragmented.bin'), 20 * MiB, 9);
}

const scenarios: Scenario[] = [
  { name: '4 KiB clusters, files written then deleted', size: 256 * MiB, mkntfsArgs: [], fill: writeThenDelete },
  { name: '64 KiB clusters', size: 512 * MiB, mkntfsArgs: ['--cluster-size', '65536'], fill: writeThenDelete },
  { name: 'a full volume with a fragmented file', size: 64 * MiB, mkntfsArgs: [], fill: fragment },
];

for (const scenario of scenarios) {
  t.test(scenario.name, async (t) => {
    const directory = await tempDir(t);
    const image = await makeNtfsImage(path.join(directory, 'source.img'), scenario.size, scenario.mkntfsArgs);
    await withNtfsMount(t, image, scenario.fill);
    if (scenario.fill === fragment) {
      const details = await run('ntfsinfo', ['-v', '-F', '/fragmented.bin', image]);
      const fragments = Number(/fragments: (\d+)/.exec(details)?.[1]);
      t.ok(fragments > 100, `the file has ${fragments} fragments`);
      t.match(details, /\$ATTRIBUTE_LIST/, 'its runlist needed an attribute list');
    }

    const { volume, tree } = await openNtfs(t, image);
    const used = await volume.usedRanges();

    const partclone = await partcloneUsedRanges(image, directory);
    const backupBootSector: [number, number] = [scenario.size - 512, scenario.size];
    t.same(used.ranges, RangeList.of([...partclone.ranges, backupBootSector]).ranges, 'the clusters partclone.ntfs copies, and the backup boot sector');

    const ntfsinfo = await ntfsinfoVolume(image);
    t.equal(volume.info.blockSize, ntfsinfo.clusterSize, 'cluster size');
    t.equal(volume.info.totalBytes, ntfsinfo.clusterCount * ntfsinfo.clusterSize, 'total bytes');
    t.equal(volume.info.usedBytes, (ntfsinfo.clusterCount - ntfsinfo.freeClusters) * ntfsinfo.clusterSize, 'used bytes = clusters ntfsinfo does not count as free');
    t.equal(used.totalBytes, volume.info.usedBytes + 512, 'the map is the used clusters plus one sector');
    const ntfscluster = await run('ntfscluster', ['--info', image]);
    t.equal(Number(/clusters of free space\s*:\s*(\d+)/.exec(ntfscluster)?.[1]), ntfsinfo.clusterCount - volume.info.usedBytes / volume.info.blockSize, 'free clusters as ntfscluster counts them');

    const copy = path.join(directory, 'copy.img');
    await copyRanges(image, copy, used);
    const check = await ntfsfixCheck(copy);
    t.equal(check.exitCode, 0, 'ntfsfix -n finds the copy clean', { output: check.output });
    t.match(check.output, /alternate boot sector\.\.\. OK/);

    const original = await withNtfsMount(t, image, walkMount, 'ro');
    const copied = await withNtfsMount(t, copy, walkMount, 'ro');
    t.ok(original.size > 0);
    t.same(compareWalks(copied, original), [], 'the copy mounts with the same files and contents');
    const ours = await walkTree(tree);
    t.same(compareWalks(ours.files, original), [], 'and the FileTree reads them as ntfs-3g does');

    // Without the sector past the last cluster the copy is not a sound volume.
    const withoutBackup = path.join(directory, 'without-backup.img');
    await copyRanges(image, withoutBackup, RangeList.of(used.ranges.filter(([start]) => start < backupBootSector[0])));
    t.not((await ntfsfixCheck(withoutBackup)).exitCode, 0, 'ntfsfix -n fails when the backup boot sector is left out');
  });
}

t.test('a 4 GiB volume maps in well under a second', async (t) => {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'large.img'), 4 * GiB);
  const started = performance.now();
  const { volume } = await openNtfs(t, image);
  const used = await volume.usedRanges();
  const elapsed = performance.now() - started;
  t.ok(elapsed < 1000, `open and used ranges took ${elapsed.toFixed(0)} ms`);
  const ntfsinfo = await ntfsinfoVolume(image);
  t.equal(used.totalBytes, (ntfsinfo.clusterCount - ntfsinfo.freeClusters) * ntfsinfo.clusterSize + 512);
});
