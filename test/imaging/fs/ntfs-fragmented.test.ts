// Fragmentation: a file in hundreds of pieces whose runlist spans extension records,
// and a $MFT fragmented until its own runlist needs an $ATTRIBUTE_LIST. Both volumes
// go through the same used-range and file checks as the others (checkUsedRanges).
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { writeLargeDistinctFile } from '../../helpers/content.js';
import { MiB, run } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { checkUsedRanges, makeNtfsImage, withNtfsMount } from './ntfs-helpers.js';

/** Write files of `fileSize` until the volume is full; return how many. */
async function fillUp(directory: string, fileSize: number): Promise<number> {
  await fs.mkdir(directory);
  const content = Buffer.alloc(fileSize, 'y');
  let count = 0;
  try {
    for (;;) {
      await fs.writeFile(path.join(directory, `f${count}`), content);
      count++;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  }
  return count;
}

async function removeEvery(directory: string, count: number, first: number, step: number): Promise<void> {
  for (let index = first; index <= count; index += step)
    await fs.rm(path.join(directory, `f${index}`), { force: true });
}

t.test('a file in hundreds of fragments', async (t) => {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'source.img'), 64 * MiB);
  // Fill with 64 KiB files, free every other one, then write a file into the holes.
  await withNtfsMount(t, image, async (root) => {
    const fill = path.join(root, 'fill');
    await removeEvery(fill, await fillUp(fill, 64 * 1024), 0, 2);
    await writeLargeDistinctFile(path.join(root, 'fragmented.bin'), 20 * MiB, 9);
  });
  const details = await run('ntfsinfo', ['-v', '-F', '/fragmented.bin', image]);
  const fragments = Number(/fragments: (\d+)/.exec(details)?.[1]);
  t.ok(fragments > 100, `the file has ${fragments} fragments`);
  t.match(details, /\$ATTRIBUTE_LIST/, 'its runlist needed an attribute list');
  await checkUsedRanges(t, image, directory);
});

t.test('a fragmented $MFT with an attribute list', async (t) => {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'source.img'), 64 * MiB);
  // One-cluster holes everywhere, then thousands of new files: $MFT grows into the
  // holes past its reserved zone. Then some space is freed again.
  await withNtfsMount(t, image, async (root) => {
    const fill = path.join(root, 'fill');
    const count = await fillUp(fill, 4096);
    await removeEvery(fill, count, 0, 2);
    await fs.mkdir(path.join(root, 'empty'));
    for (let index = 0; index < 12000; index++)
      await (await fs.open(path.join(root, 'empty', `e${index}`), 'w')).close();
    await removeEvery(fill, count, 1, 4);
  });
  const details = await run('ntfsinfo', ['-v', '-F', '/$MFT', image]);
  t.match(details, /\$ATTRIBUTE_LIST/, '$MFT has an attribute list');
  t.ok((details.match(/Dumping attribute \$DATA/g) ?? []).length > 1, "$MFT's runlist is spread over several records");
  await checkUsedRanges(t, image, directory);
});
