// The used-range map of NTFS volumes with 4 KiB and 64 KiB clusters after files were
// written and deleted, checked against partclone.ntfs, ntfsinfo, ntfscluster, ntfsfix
// and ntfs-3g (see checkUsedRanges); and its speed on a 4 GiB volume.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Prng, textLike, writeLargeDistinctFile } from '../../helpers/content.js';
import { GiB, MiB } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { checkUsedRanges, makeNtfsImage, ntfsinfoVolume, openNtfs, withNtfsMount } from './ntfs-helpers.js';

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

for (const [name, size, mkntfsArgs] of [
  ['4 KiB clusters, files written then deleted', 256 * MiB, []],
  ['64 KiB clusters, files written then deleted', 512 * MiB, ['--cluster-size', '65536']],
] as const) {
  t.test(name, async (t) => {
    const directory = await tempDir(t);
    const image = await makeNtfsImage(path.join(directory, 'source.img'), size, [...mkntfsArgs]);
    await withNtfsMount(t, image, writeThenDelete);
    await checkUsedRanges(t, image, directory);
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
