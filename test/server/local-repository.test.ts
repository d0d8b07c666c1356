// The in-process repository keeps the promises of the HTTP path: an object is stored only
// if it hashes to its name, a commit is refused while an object it names is absent, reads
// are decoded and verified, and a closed session takes nothing more.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { LocalRepository } from '../../server/local-repository.js';
import { digestOf } from '../../src/format/digest.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import { sampleManifest } from '../helpers/manifest.js';
import { storedChunks } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

t.test('uploads through the in-process repository', async (t) => {
  const repo = path.join(await tempDir(t), 'repo');
  const repository = await LocalRepository.open(repo, { command: 'b365 image', create: true });
  t.teardown(() => repository.close());
  t.equal(repository.server, repo, 'named by its directory');
  const session = randomUUID();
  t.equal((await repository.openSession(session, 'pc-01', null)).state, 'open');

  const data = Buffer.from('a chunk of a disk '.repeat(1000));
  const digest = digestOf(data);
  const wrongName = digestOf(Buffer.from('something else'));
  await t.rejects(repository.putChunk(session, wrongName, encodeFrame(data)), { code: 'digest_mismatch' });
  t.same(await storedChunks(repo), [], 'a chunk that is not what its name says is not stored');

  const frame = encodeFrame(data);
  t.same(await repository.putChunk(session, digest, [frame.subarray(0, 10), frame.subarray(10)], frame.length), {
    created: true,
  });
  t.same(await repository.putChunk(session, digest, frame), { created: false }, 'the second upload only touches it');
  t.same(await repository.missing(session, [digest, wrongName]), [wrongName]);
  t.same(await repository.chunk(digest), data, 'read back, decoded and verified');
  await t.rejects(repository.chunk(wrongName), { code: 'not_found' });

  await t.rejects(repository.commit(session, sampleManifest()), { code: 'missing_objects' });
  t.equal((await repository.heartbeat(session)).state, 'open', 'a refused commit leaves the session open');
  t.equal((await repository.abort(session)).state, 'aborted');
  await t.rejects(repository.putChunk(session, digest, frame), { code: 'conflict', message: /is aborted/ });
});

t.test('a stored chunk changed on disk is refused when read', async (t) => {
  const repo = path.join(await tempDir(t), 'repo');
  const repository = await LocalRepository.open(repo, { command: 'b365 image', create: true });
  t.teardown(() => repository.close());
  const session = randomUUID();
  await repository.openSession(session, 'pc-01', null);
  const data = Buffer.alloc(4096, 7);
  const digest = digestOf(data);
  await repository.putChunk(session, digest, encodeFrame(data));
  const file = path.join(repo, 'chunks', digest.slice(0, 2), digest.slice(2, 4), digest);
  await fs.writeFile(file, encodeFrame(Buffer.alloc(4096, 8)));
  await t.rejects(repository.chunk(digest), { code: 'digest_mismatch' });
});
