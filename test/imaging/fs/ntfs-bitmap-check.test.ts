// $Bitmap is not trusted blindly: with its head zeroed (boot sector and $MFT marked free)
// the volume is captured raw with a warning naming the structure; a file whose clusters
// are marked free is captured anyway. Either way the restored copy is what the source
// is: ntfsfix reports the same, and every file reads back the same.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { DeviceBlockReader } from '../../../imaging/block-reader.js';
import { parseBootSector } from '../../../imaging/fs/ntfs/boot-sector.js';
import { AttributeType } from '../../../imaging/fs/ntfs/mft-record.js';
import { Mft, SystemFile } from '../../../imaging/fs/ntfs/mft.js';
import type { Run } from '../../../imaging/fs/ntfs/runlist.js';
import { Prng, textLike } from '../../helpers/content.js';
import { MiB } from '../../helpers/disk.js';
import { startServer } from '../../helpers/server.js';
import { tempDir } from '../../helpers/tmp.js';
import { captureAndRestore, ntfsfixReport } from './damage-roundtrip.js';
import { makeNtfsImage, openNtfs, walkTree, withNtfsMount } from './ntfs-helpers.js';

interface Layout {
  clusterSize: number;
  bitmapRuns: readonly Run[];
  fileRuns: readonly Run[];
}

/** Where $Bitmap and one file's data sit, read with the module's own MFT reader. */
async function layoutOf(image: string, fileRecord: number): Promise<Layout> {
  const { reader, close } = await DeviceBlockReader.open(image);
  try {
    const boot = parseBootSector(await reader.read(0, 512), image, reader.size);
    const mft = await Mft.open(reader, boot);
    const bitmap = (await mft.inode(SystemFile.bitmap)).data(AttributeType.data)!;
    const file = (await mft.inode(fileRecord)).data(AttributeType.data)!;
    return { clusterSize: boot.clusterSize, bitmapRuns: bitmap.runlist!.runs, fileRuns: file.runlist!.runs };
  } finally {
    await close();
  }
}

/** Clear the $Bitmap bits of clusters [first, first + count). */
async function clearBits(image: string, layout: Layout, first: number, count: number): Promise<void> {
  const run = layout.bitmapRuns[0]!;
  const handle = await fs.open(image, 'r+');
  try {
    const start = run.lcn! * layout.clusterSize;
    const bytes = Buffer.alloc(Math.ceil((first + count) / 8) + 1);
    await handle.read(bytes, 0, bytes.length, start);
    for (let cluster = first; cluster < first + count; cluster++) bytes[cluster >> 3]! &= ~(1 << (cluster & 7));
    await handle.write(bytes, 0, bytes.length, start);
  } finally {
    await handle.close();
  }
}

async function filesOf(image: string): Promise<Map<string, string>> {
  const { tree } = await openNtfs(t, image);
  const { files } = await walkTree(tree);
  return new Map([...files].map(([name, file]) => [name, JSON.stringify(file)]));
}

async function buildVolume(
  directory: string,
  name: string,
): Promise<{ image: string; record: number; digest: string }> {
  const image = await makeNtfsImage(path.join(directory, `${name}.img`), 24 * MiB);
  let record = 0;
  const content = textLike(new Prng(7), 300_000);
  await withNtfsMount(t, image, async (root) => {
    await fs.mkdir(path.join(root, 'docs'));
    for (let index = 0; index < 20; index++)
      await fs.writeFile(path.join(root, 'docs', `note-${index}.txt`), textLike(new Prng(index), 5000 + index * 300));
    await fs.writeFile(path.join(root, 'victim.bin'), content);
    record = Number((await fs.stat(path.join(root, 'victim.bin'))).ino);
  });
  return { image, record, digest: createHash('sha256').update(content).digest('hex') };
}

t.test('$Bitmap with its head zeroed: captured raw, restored as it was', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const { image, record } = await buildVolume(directory, 'bitmap-head');
  const layout = await layoutOf(image, record);
  const handle = await fs.open(image, 'r+');
  await handle.write(Buffer.alloc(64), 0, 64, layout.bitmapRuns[0]!.lcn! * layout.clusterSize);
  await handle.close();
  const sourceCheck = await ntfsfixReport(image);
  const sourceFiles = await filesOf(image);

  const trip = await captureAndRestore(server, image, 'ntfs-bitmap-head');
  t.equal(trip.method, 'raw', 'the volume falls back to raw');
  t.match(
    trip.warnings.join('\n'),
    /ntfs on .*: \$Bitmap marks cluster 0 \(boot sector\) free; the allocation bitmap is damaged, capturing every block \(raw\)/,
  );
  t.equal(await ntfsfixReport(trip.restored), sourceCheck, 'ntfsfix -n reports the same on both');
  t.same(await filesOf(trip.restored), sourceFiles, 'every file reads back the same');
});

t.test("a file's clusters marked free in $Bitmap are captured anyway", async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const { image, record, digest } = await buildVolume(directory, 'file-bits');
  const layout = await layoutOf(image, record);
  let cleared = 0;
  for (const run of layout.fileRuns) {
    if (run.lcn === null) continue;
    await clearBits(image, layout, run.lcn, run.length);
    cleared += run.length;
  }
  const sourceCheck = await ntfsfixReport(image);
  const sourceFiles = await filesOf(image);

  const trip = await captureAndRestore(server, image, 'ntfs-file-bits');
  t.equal(trip.method, 'used-blocks');
  t.match(
    trip.warnings.join('\n'),
    new RegExp(
      `ntfs on .*: ${cleared} clusters referenced by MFT record ${record} are marked free in \\$Bitmap; captured anyway`,
    ),
  );
  t.equal(await ntfsfixReport(trip.restored), sourceCheck, 'ntfsfix -n reports the same on both');
  const restoredFiles = await filesOf(trip.restored);
  t.same(restoredFiles, sourceFiles, 'every file reads back the same');
  t.equal(
    JSON.parse(restoredFiles.get('/victim.bin') ?? '{}').sha256,
    digest,
    'the file whose clusters were marked free is whole',
  );
});
