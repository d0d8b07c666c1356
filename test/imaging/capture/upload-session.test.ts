// The upload session alone, against a real server: resumed by its state file while the
// repository keeps it open, replaced when it does not, committed with a repair of what
// the repository lacks, and forgotten only once committed.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { UploadSession, type UploadSessionOptions } from '../../../imaging/capture/upload-session.js';
import { RepositoryClient } from '../../../src/client/repository.js';
import { MissingObjectsError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/log.js';
import { digestOf } from '../../../src/format/digest.js';
import { FixedIndex } from '../../../src/format/fixed-index.js';
import { encodeFrame } from '../../../src/format/lz4-frame.js';
import type { Manifest } from '../../../src/format/manifest.js';
import { sampleManifest } from '../../helpers/manifest.js';
import { startServer } from '../../helpers/server.js';
import { tempDir } from '../../helpers/tmp.js';

const CHUNK = 256 << 10;

/** A one-volume raw image of two distinct chunks: the bytes, their index, and a manifest naming them. */
function twoChunkImage(machine: string): { chunks: Buffer[]; index: FixedIndex; manifest: Manifest } {
  const chunks = [randomBytes(CHUNK), randomBytes(CHUNK)];
  const index = new FixedIndex(CHUNK, 2 * CHUNK);
  for (const [position, bytes] of chunks.entries()) index.set(position, digestOf(bytes));
  const manifest = sampleManifest();
  manifest.machine = machine;
  const disk = manifest.disks[0]!;
  Object.assign(disk, { size: 2 * CHUNK, partitionTable: { type: 'none', partitions: [] } });
  Object.assign(disk.volumes[0]!, {
    id: 'disk',
    kind: 'disk',
    partitionNumber: null,
    offset: 0,
    size: 2 * CHUNK,
    filesystem: null,
    method: 'raw',
    chunkSize: CHUNK,
    index: index.digest(),
    contentDigest: digestOf(Buffer.concat(chunks)),
  });
  return { chunks, index, manifest };
}

const exists = (file: string) =>
  fs.access(file).then(
    () => true,
    () => false,
  );

t.test('UploadSession', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const client = new RepositoryClient({ server: server.url, token: server.adminToken, retryForMs: 0 });
  t.teardown(() => client.close());
  const options = (machine: string): UploadSessionOptions => ({
    stateDirectory: path.join(directory, 'state'),
    machine,
    sources: ['/dev/sdz'],
    parent: null,
    log: silentLogger,
  });
  const open = async (machine: string) => {
    const session = await UploadSession.open(client, options(machine));
    t.teardown(() => session.close());
    return session;
  };

  t.test('resumed by its state file while the repository keeps it open', async (t) => {
    const first = await open('resumer');
    t.equal(first.resumed, false, 'a first run opens a new session');
    t.equal((await fs.stat(first.stateFilePath)).mode & 0o777, 0o600, 'the state file is private');
    const saved = JSON.parse(await fs.readFile(first.stateFilePath, 'utf8'));
    t.equal(saved.sessionId, first.id, 'and names the session');
    first.close();
    const second = await open('resumer');
    t.equal(second.resumed, true, 'the next run resumes');
    t.equal(second.id, first.id, 'the same session');
    second.close();
    await client.abort(second.id);
    const third = await open('resumer');
    t.equal(third.resumed, false, 'a session the repository aborted is not resumed');
    t.not(third.id, first.id, 'a new one is opened');
    t.equal(JSON.parse(await fs.readFile(third.stateFilePath, 'utf8')).sessionId, third.id, 'and remembered');
  });

  t.test('a commit refused for a missing chunk is repaired, then the state file is forgotten', async (t) => {
    const session = await open('repaired');
    const { chunks, index, manifest } = twoChunkImage('repaired');
    const [kept, lost] = chunks.map(digestOf) as [string, string];
    await client.putChunk(session.id, kept, encodeFrame(chunks[0]!));
    await session.putIndexes(new Map([[index.digest(), index.encode()]]));
    const asked: string[][] = [];
    const committed = await session.commit(manifest, async (missing) => {
      asked.push([...missing]);
      if (!missing.has(lost)) return 0;
      await client.putChunk(session.id, lost, encodeFrame(chunks[1]!));
      missing.delete(lost);
      return 1;
    });
    t.same(asked, [[lost]], 'the repair was asked for exactly the chunk never sent');
    t.match(committed.image.id, /^repaired@/, 'the image is committed');
    t.equal(await exists(session.stateFilePath), false, 'the state file is gone');
    const index2 = await client.index(manifest.disks[0]!.volumes[0]!.index);
    t.equal(index2.get(1), lost, 'the committed index reads back from the repository');
  });

  t.test('a repair that sends nothing: the refusal reaches the caller and the session stays', async (t) => {
    const session = await open('unrepaired');
    const { index, manifest } = twoChunkImage('unrepaired');
    await session.putIndexes(new Map([[index.digest(), index.encode()]]));
    await t.rejects(
      session.commit(manifest, async () => 0),
      MissingObjectsError,
    );
    t.equal(await exists(session.stateFilePath), true, 'the state file is kept for the next run');
    await t.rejects(client.image('unrepaired@latest'), 'no image');
  });
});
