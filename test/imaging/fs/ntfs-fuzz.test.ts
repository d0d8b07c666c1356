// Seeded damage in NTFS metadata (boot sector, MFT records, $Bitmap, directory index
// blocks): the reader succeeds or says what is wrong, never crashes or hangs, and a
// usable capture map restores to what ntfsfix finds as damaged as the source.
// B365_FUZZ_COUNT=500 runs a bigger corpus.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ntfsFilesystem } from '../../../imaging/fs/ntfs.js';
import { parseBootSector } from '../../../imaging/fs/ntfs/boot-sector.js';
import { AttributeType } from '../../../imaging/fs/ntfs/mft-record.js';
import { Mft, SystemFile } from '../../../imaging/fs/ntfs/mft.js';
import type { Range } from '../../../imaging/ranges.js';
import { Prng, textLike } from '../../helpers/content.js';
import { MiB } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { ntfsfixReport } from './damage-roundtrip.js';
import { fuzzFilesystem } from './fuzz-driver.js';
import { makeNtfsImage, withNtfsMount } from './ntfs-helpers.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';

/** Where the boot sector, the first MFT records, $Bitmap and the root index sit. */
async function metadataRegions(bytes: Buffer): Promise<Range[]> {
  const reader = new MemoryBlockReader(bytes, 'ntfs');
  const boot = parseBootSector(await reader.read(0, 512), 'ntfs', reader.size);
  const mft = await Mft.open(reader, boot);
  const mftStart = boot.mftCluster * boot.clusterSize;
  const regions: Range[] = [
    [0, 512],
    [mftStart, mftStart + 48 * boot.mftRecordSize],
  ];
  const bitmapRun = (await mft.inode(SystemFile.bitmap)).data(AttributeType.data)!.runlist!.runs[0]!;
  regions.push([bitmapRun.lcn! * boot.clusterSize, bitmapRun.lcn! * boot.clusterSize + 512]);
  const rootIndex = (await mft.inode(SystemFile.root)).data(AttributeType.indexAllocation, '$I30');
  for (const run of rootIndex?.runlist?.runs ?? [])
    if (run.lcn !== null) regions.push([run.lcn * boot.clusterSize, (run.lcn + run.length) * boot.clusterSize]);
  return regions;
}

t.test('ntfs: damaged metadata', async (t) => {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'fuzz.img'), 16 * MiB);
  await withNtfsMount(t, image, async (root) => {
    await fs.mkdir(path.join(root, 'docs'));
    for (let index = 0; index < 80; index++)
      await fs.writeFile(path.join(root, `file-${index}.txt`), textLike(new Prng(index + 1), 800 + index * 97));
    await fs.writeFile(path.join(root, 'docs', 'big.bin'), textLike(new Prng(500), 900_000));
  });
  const bytes = await fs.readFile(image);
  await fuzzFilesystem(t, {
    name: 'ntfs',
    module: ntfsFilesystem,
    base: bytes,
    regions: await metadataRegions(bytes),
    seed: 0x7f5,
    defaultCount: 40,
    compareEvery: 3,
    check: ntfsfixReport,
  });
});
