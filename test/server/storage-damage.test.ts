// Storage damage heals: a chunk file lost from the store is never referenced by a new
// image as if it were there. The next image of the machine sends it again (whether or
// not verification found the loss first), the images that lacked it become whole
// again, and they restore.
import fs from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { chunkKey } from '../../server/store/store.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import { decodeFrame } from '../../src/format/lz4-frame.js';
import { b365 } from '../helpers/cli.js';
import { attachLoop, makeImageFile, MiB, mount, run, sfdisk } from '../helpers/disk.js';
import { fillPosixTree, LINUX_FS, snapshotTree } from '../helpers/fixtures.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const DISK_SIZE = 40 * MiB;
const PARTITION_OFFSET = 1 * MiB;
/** GPT keeps its backup table in the last MiB. */
const PARTITION_SIZE = DISK_SIZE - PARTITION_OFFSET - 1 * MiB;

/** A small GPT disk with one filled ext4 partition (made on an offset loop). */
async function buildDisk(t: Parameters<typeof tempDir>[0], directory: string): Promise<string> {
  const image = path.join(directory, 'disk.img');
  await makeImageFile(image, DISK_SIZE);
  await sfdisk(image, `label: gpt\nstart=2048, size=${PARTITION_SIZE / 512}, type=${LINUX_FS}, name="root"\n`);
  const loop = await attachLoop(t, image, { offset: PARTITION_OFFSET, size: PARTITION_SIZE });
  await run('mkfs.ext4', ['-q', '-L', 'root', loop.device]);
  const root = await mount(t, loop.device);
  await fillPosixTree(root.path, 7, { files: 40, bigFile: 6 * MiB, links: false });
  await root.unmount();
  await loop.detach();
  return image;
}

/** Distinct chunks of an image's ext4 volume, read from the store as an auditor would. */
async function chunksOf(
  repo: string,
  manifest: { disks: { volumes: { index: string; filesystem: { type: string } | null }[] }[] },
): Promise<string[]> {
  const volume = manifest.disks[0]!.volumes.find((candidate) => candidate.filesystem?.type === 'ext4')!;
  const frame = await fs.readFile(path.join(repo, chunkKey(volume.index)));
  return [...FixedIndex.parse(decodeFrame(frame, 1 << 30)).distinctDigests()];
}

t.test('a chunk lost from the store is sent again and the images that lacked it heal', async (t) => {
  const server = await startServer(t);
  const env = server.env;
  const directory = await tempDir(t);
  const source = await buildDisk(t, directory);
  const imageOf = async (t: Test, args: string[] = []) => {
    const result = await b365(['image', source, '--machine', 'pc', '--json', ...args], { env });
    t.equal(result.exitCode, 0, result.stderr);
    return result.json as { image: string; parent: string | null };
  };
  const stateOf = async (id: string) =>
    ((await b365(['images', '--json'], { env })).json.images as { id: string; state: string }[]).find(
      (image) => image.id === id,
    )?.state;

  const first = await imageOf(t);
  const manifest = JSON.parse((await b365(['images', 'show', first.image, '--json'], { env })).stdout);
  const chunks = await chunksOf(server.repo, manifest);
  t.ok(chunks.length >= 4, `the image holds ${chunks.length} chunks`);
  const [foundByVerification, foundByCommit, foundByFull] = [
    chunks[1]!,
    chunks[chunks.length - 2]!,
    chunks[Math.floor(chunks.length / 2)]!,
  ];
  const fileOf = (digest: string) => path.join(server.repo, chunkKey(digest));

  t.test(
    'verification forgets a lost chunk and marks its image failed; the next image sends it and the image is ok again',
    async (t) => {
      await fs.rm(fileOf(foundByVerification));
      const verify = await b365(['verify', '--all', '--json'], { env });
      t.equal(verify.exitCode, 9, 'verification fails');
      t.same(verify.json.report.missingChunks, [foundByVerification]);
      t.equal(await stateOf(first.image), 'failed');

      const next = await imageOf(t);
      t.equal(next.parent, null, 'a failed image is no base');
      await fs.access(fileOf(foundByVerification));
      t.equal(await stateOf(first.image), 'ok', 'the damaged image is whole again once its chunk is back');
    },
  );

  t.test(
    'a chunk lost without verification noticing: the next incremental (or --full) image sends it and exits 0',
    async (t) => {
      await fs.rm(fileOf(foundByCommit));
      const incremental = await imageOf(t);
      t.not(incremental.parent, null, 'an incremental, which skips what its base holds');
      await fs.access(fileOf(foundByCommit));
      await fs.rm(fileOf(foundByFull));
      const full = await imageOf(t, ['--full']);
      t.equal(full.parent, null, '--full trusts no base: it asks the server about every chunk');
      await fs.access(fileOf(foundByFull));
    },
  );

  t.test('full content verification passes and the old image restores', async (t) => {
    const verify = await b365(['verify', '--all', '--level', 'restore-stream', '--json'], { env });
    t.equal(verify.exitCode, 0, verify.stderr);
    t.equal(verify.json.report.summary.failed, 0);
    const target = path.join(directory, 'restored.img');
    const restore = await b365(['restore', first.image, '--to', target], { env });
    t.equal(restore.exitCode, 0, restore.stderr);
    const trees = [];
    for (const disk of [source, target]) {
      const loop = await attachLoop(t, disk, { offset: PARTITION_OFFSET, size: PARTITION_SIZE, readOnly: true });
      await run('e2fsck', ['-fn', loop.device]);
      const mounted = await mount(t, loop.device, { options: 'ro,noload' });
      trees.push(await snapshotTree(mounted.path));
      await mounted.unmount();
      await loop.detach();
    }
    t.same(trees[1], trees[0], 'every file of the old image is restored as it was');
  });
});
