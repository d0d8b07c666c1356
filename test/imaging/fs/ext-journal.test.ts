// A filesystem captured while mounted: its journal holds committed transactions whose
// bitmaps are not yet written in place. The used map must keep what they allocate, so
// that a copy of the used ranges, once the journal is replayed, has every file.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { extFilesystem } from '../../../imaging/fs/ext.js';
import { readGroupDescriptors } from '../../../imaging/fs/ext/group-descriptors.js';
import { parseSuperblock } from '../../../imaging/fs/ext/superblock.js';
import { usedByteRanges } from '../../../imaging/fs/ext/used-blocks.js';
import { attachLoop, mount, run } from '../../helpers/disk.js';
import {
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

t.test('an image taken while mounted keeps what the journal allocates', async (t) => {
  const image = await makeExtImage(t, 'ext4', 512 * MiB, []);
  const snapshot = `${image}.snapshot`;
  const loop = await attachLoop(t, image);
  const mounted = await mount(t, loop.device);
  let expected: Awaited<ReturnType<typeof hashTree>>;
  try {
    // fsync writes each file's data and commits the journal, but (unlike sync or syncfs)
    // leaves the bitmaps and inode tables dirty in memory, not yet written in place.
    const writeSynced = async (file: string, content: Buffer) => {
      const handle = await fs.open(file, 'w');
      await handle.writeFile(content);
      await handle.sync();
      await handle.close();
    };
    // Few writes, done quickly: the kernel writes dirty metadata in place on its own
    // after 30 s (dirty_expire_centisecs), which would leave nothing for the journal to show.
    for (let index = 0; index < 4; index++) {
      const directory = path.join(mounted.path, `dir${index}`);
      await fs.mkdir(directory);
      await writeSynced(path.join(directory, 'data.bin'), largePattern(index, 2 * MiB + index));
      for (let small = 0; small < 6; small++)
        await writeSynced(path.join(directory, `s${small}`), patternBytes(small, 300 + small * 200));
    }
    expected = await hashTree(mounted.path);
    await run('cp', ['--sparse=always', image, snapshot]);
  } finally {
    await mounted.unmount();
    await loop.detach();
  }

  const reader = await openReader(t, snapshot);
  const opened = await extFilesystem.open(reader);
  t.match(
    opened.warnings.join('\n'),
    /journal holds \d+ committed transactions? not yet written in place/,
    'the dirty journal is reported',
  );
  const used = await opened.usedRanges();

  // What the on-disk bitmaps alone would say, for comparison.
  const superblock = parseSuperblock(await reader.read(1024, 1024), reader.size, reader.description);
  const onDiskOnly = await usedByteRanges(reader, superblock, await readGroupDescriptors(reader, superblock), {
    warnings: [],
  });
  t.comment(
    `used: ${used.totalBytes / 4096} blocks with the journal's bitmaps, ${onDiskOnly.totalBytes / 4096} from the on-disk bitmaps alone`,
  );
  t.ok(used.totalBytes > onDiskOnly.totalBytes, 'the journal allocates blocks the on-disk bitmaps do not show yet');

  const copy = `${snapshot}.used`;
  await copyRanges(snapshot, copy, used);
  // e2fsck replays the journal, then the filesystem must be clean with every file intact.
  const replay = await run('e2fsck', ['-fy', copy]).catch((error: { exitCode?: number; stdout?: string }) => {
    if (error.exitCode === 1) return String(error.stdout);
    throw error;
  });
  t.match(replay, /recovering journal/i, 'e2fsck replays the journal of the copy');
  const check = await e2fsckReadOnly(copy);
  t.equal(check.exitCode, 0, `after replay the copy is clean\n${check.exitCode === 0 ? '' : check.output}`);
  const copied = await withMounted(t, copy, (root) => hashTree(root), { readOnly: true });
  t.same([...copied.entries()], [...expected!.entries()], `all ${expected!.size} synced paths read back intact`);
});
