// One volume written back from a real server: every byte as captured, each distinct
// chunk fetched once, holes zeroed only when asked, and a corrupt chunk stopping the
// write before any of its bytes reach the target.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { writeVolume } from '../../../imaging/restore/volume-writer.js';
import { chunkKey } from '../../../server/store/store.js';
import { RepositoryClient } from '../../../src/client/repository.js';
import { CorruptChunkError } from '../../../src/core/errors.js';
import { type Volume, manifestVolumes } from '../../../src/format/manifest.js';
import { b3sum } from '../../helpers/b3sum.js';
import { b365 } from '../../helpers/cli.js';
import { Prng } from '../../helpers/content.js';
import { startServer } from '../../helpers/server.js';
import { tempDir } from '../../helpers/tmp.js';

const MiB = 1 << 20;

t.test('writeVolume', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  // 4 MiB of distinct bytes, 6 MiB of one repeated chunk, 2 MiB of zeros (holes).
  const source = path.join(directory, 'source.img');
  const distinct = Buffer.alloc(4 * MiB);
  new Prng(3).fill(distinct);
  await fs.writeFile(source, Buffer.concat([distinct, Buffer.alloc(6 * MiB, 0xff), Buffer.alloc(2 * MiB)]));
  const captured = await b365(['image', source, '--machine', 'writer', '--chunk-size', '512K', '--json'], {
    env: server.env,
  });
  t.equal(captured.exitCode, 0, captured.stderr);

  const client = new RepositoryClient({ server: server.url, token: server.adminToken });
  t.teardown(() => client.close());
  const { manifest } = await client.manifest('writer@latest');
  const volume: Volume = [...manifestVolumes(manifest)][0]!.volume;
  const index = await client.index(volume.index);
  t.equal(index.holeCount(), 4, 'the zero tail is four holes');

  const restore = async (name: string, fill: number, extra: Partial<Parameters<typeof writeVolume>[0]> = {}) => {
    const target = path.join(directory, name);
    await fs.writeFile(target, Buffer.alloc(volume.size, fill));
    const handle = await fs.open(target, 'r+');
    try {
      const result = await writeVolume({ client, handle, volume, index, targetOffset: 0, writeHoles: false, ...extra });
      return { target, result };
    } finally {
      await handle.close();
    }
  };

  t.test('every byte as captured, each distinct chunk fetched once', async (t) => {
    const { target, result } = await restore('plain.img', 0);
    t.equal(await b3sum(target), await b3sum(source), 'the target hashes like the source (b3sum)');
    t.equal(
      result.chunksFetched,
      index.distinctDigests().length,
      `${result.chunksFetched} fetches for ${index.distinctDigests().length} distinct chunks (the repeated 0xff chunk once)`,
    );
    t.equal(result.bytesWritten, 10 * MiB, 'holes were not written');
  });

  t.test('holes are zeroed when the target must hold zeros there', async (t) => {
    const { target, result } = await restore('dirty.img', 0xaa, { writeHoles: true });
    t.equal(await b3sum(target), await b3sum(source));
    t.equal(result.bytesWritten, 12 * MiB);
  });

  t.test('a corrupt chunk stops the write before its bytes reach the target', async (t) => {
    const position = 3;
    const digest = index.get(position)!;
    const file = path.join(server.repo, chunkKey(digest));
    const original = await fs.readFile(file);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 100] ^= 0xff;
    await fs.writeFile(file, damaged);
    t.teardown(() => fs.writeFile(file, original));
    const target = path.join(directory, 'corrupt.img');
    await fs.writeFile(target, Buffer.alloc(volume.size));
    const handle = await fs.open(target, 'r+');
    const error = await writeVolume({ client, handle, volume, index, targetOffset: 0, writeHoles: false })
      .then(
        () => null,
        (caught: unknown) => caught,
      )
      .finally(() => handle.close());
    t.type(error, CorruptChunkError);
    t.match(
      (error as Error).message,
      new RegExp(
        `^volume ${volume.id} at byte ${volume.offset + position * volume.chunkSize}: chunk ${digest} is corrupt \\(.*\\); restore stopped before writing it$`,
      ),
    );
    const written = await fs.readFile(target);
    const at = position * volume.chunkSize;
    t.ok(
      written.subarray(at, at + volume.chunkSize).every((byte) => byte === 0),
      'nothing of the corrupt chunk was written',
    );
  });

  t.test('a failed write stops the volume with its error', async (t) => {
    const target = path.join(directory, 'read-only.img');
    await fs.writeFile(target, Buffer.alloc(volume.size));
    const handle = await fs.open(target, 'r');
    t.teardown(() => handle.close());
    await t.rejects(writeVolume({ client, handle, volume, index, targetOffset: 0, writeHoles: false }), {
      code: 'EBADF',
    });
  });

  t.test('an abort stops the write with its reason', async (t) => {
    const controller = new AbortController();
    const reason = new Error('stopped by the operator');
    let progressed = 0;
    const attempt = restore('aborted.img', 0, {
      signal: controller.signal,
      parallel: 1,
      onProgress: (bytes) => {
        progressed += bytes;
        if (progressed >= 2 * MiB) controller.abort(reason);
      },
    });
    await t.rejects(attempt, reason);
    t.ok(progressed < 12 * MiB, `stopped part way (${progressed} bytes)`);
  });
});
