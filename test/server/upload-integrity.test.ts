// What a commit may trust: an object the catalog lists but the store lost is asked for
// again instead of being referenced; a chunk upload tells a machine nothing about what
// other machines hold; a base image deleted during an upload does not fail the commit.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { chunkKey } from '../../server/store/store.js';
import { encodeChunk } from '../../src/format/chunk.js';
import { digestOf } from '../../src/format/digest.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import type { Manifest } from '../../src/format/manifest.js';
import { api } from '../helpers/api.js';
import { rawDiskManifest } from '../helpers/manifest.js';
import { startServer, type TestServer } from '../helpers/server.js';

const CHUNK = 256 << 10;

function chunkOf(seed: string): { digest: string; frame: Buffer } {
  return encodeChunk(Buffer.alloc(CHUNK, seed));
}

/** A raw one-volume manifest whose index names `chunks` in order; the index is uploaded too. */
async function volumeManifest(
  server: TestServer,
  token: string,
  session: string,
  machine: string,
  chunks: string[],
): Promise<Manifest> {
  const index = new FixedIndex(CHUNK, CHUNK * chunks.length);
  for (const [position, digest] of chunks.entries()) index.set(position, digest);
  const bytes = index.encode();
  const indexDigest = digestOf(bytes);
  const put = await api(server.url, 'PUT', `/sessions/${session}/indexes/${indexDigest}`, {
    token,
    body: encodeFrame(bytes),
  });
  if (put.status !== 201 && put.status !== 200) throw new Error(`index upload failed: ${JSON.stringify(put.body)}`);
  return rawDiskManifest(machine, index, indexDigest);
}

async function machineToken(server: TestServer, machine: string): Promise<string> {
  const response = await api(server.url, 'POST', '/tokens', {
    token: server.adminToken,
    json: { role: 'machine', machine },
  });
  if (response.status !== 201) throw new Error(`token create failed: ${JSON.stringify(response.body)}`);
  return response.body.token as string;
}

async function openSession(
  server: TestServer,
  token: string,
  machine: string,
  parent: string | null = null,
): Promise<string> {
  const id = randomUUID();
  const response = await api(server.url, 'POST', '/sessions', { token, json: { id, machine, parent } });
  if (response.status !== 200) throw new Error(`session open failed: ${JSON.stringify(response.body)}`);
  return id;
}

async function putChunk(server: TestServer, token: string, session: string, chunk: { digest: string; frame: Buffer }) {
  return api(server.url, 'PUT', `/sessions/${session}/chunks/${chunk.digest}`, { token, body: chunk.frame });
}

/** One committed image of `machine` holding `chunks`. */
async function commitImage(
  server: TestServer,
  token: string,
  machine: string,
  chunks: { digest: string; frame: Buffer }[],
): Promise<{ image: string; manifest: Manifest }> {
  const session = await openSession(server, token, machine);
  for (const chunk of chunks) await putChunk(server, token, session, chunk);
  const manifest = await volumeManifest(
    server,
    token,
    session,
    machine,
    chunks.map((chunk) => chunk.digest),
  );
  const commit = await api(server.url, 'POST', `/sessions/${session}/commit`, { token, json: manifest });
  if (commit.status !== 201) throw new Error(`commit failed: ${JSON.stringify(commit.body)}`);
  return { image: commit.body.image.id as string, manifest };
}

t.test('upload integrity', async (t) => {
  const server = await startServer(t);
  const alpha = await machineToken(server, 'alpha');
  const beta = await machineToken(server, 'beta');

  t.test(
    'a commit is refused while the store lacks an object the catalog lists, and succeeds once it is sent',
    async (t) => {
      const lost = chunkOf('L');
      const kept = chunkOf('K');
      await commitImage(server, alpha, 'alpha', [lost, kept]);
      await fs.rm(path.join(server.repo, chunkKey(lost.digest)));

      const session = await openSession(server, alpha, 'alpha');
      const asked = await api(server.url, 'POST', `/sessions/${session}/missing`, {
        token: alpha,
        json: { digests: [lost.digest, kept.digest] },
      });
      t.same(asked.body.missing, [], 'the catalog still lists both');
      const manifest = await volumeManifest(server, alpha, session, 'alpha', [lost.digest, kept.digest]);
      const refused = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: alpha, json: manifest });
      t.equal(refused.status, 409, 'no image references an object the store lacks');
      t.equal(refused.body.code, 'missing_objects');
      t.same(refused.body.missing, [lost.digest], 'exactly the lost chunk is named');
      t.equal(refused.body.kind, 'chunk');
      const again = await api(server.url, 'POST', `/sessions/${session}/missing`, {
        token: alpha,
        json: { digests: [lost.digest, kept.digest] },
      });
      t.same(again.body.missing, [lost.digest], 'the lost chunk is now asked for');

      t.equal((await putChunk(server, alpha, session, lost)).status, 201);
      const committed = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: alpha, json: manifest });
      t.equal(committed.status, 201, JSON.stringify(committed.body));
      await fs.access(path.join(server.repo, chunkKey(lost.digest)));
    },
  );

  t.test('a lost index is asked for again too', async (t) => {
    const chunk = chunkOf('I');
    const { manifest } = await commitImage(server, alpha, 'alpha', [chunk]);
    const indexDigest = manifest.disks[0]!.volumes[0]!.index;
    await fs.rm(path.join(server.repo, chunkKey(indexDigest)));
    const session = await openSession(server, alpha, 'alpha');
    await api(server.url, 'POST', `/sessions/${session}/missing`, {
      token: alpha,
      json: { digests: [indexDigest, chunk.digest] },
    });
    const refused = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: alpha, json: manifest });
    t.equal(refused.status, 409);
    t.equal(refused.body.kind, 'index');
    t.same(refused.body.missing, [indexDigest]);
    await volumeManifest(server, alpha, session, 'alpha', [chunk.digest]);
    t.equal(
      (await api(server.url, 'POST', `/sessions/${session}/commit`, { token: alpha, json: manifest })).status,
      201,
    );
  });

  t.test('uploading a chunk only another machine holds answers exactly like a new one', async (t) => {
    const held = chunkOf('H');
    await commitImage(server, alpha, 'alpha', [held]);
    const session = await openSession(server, beta, 'beta');
    const known = await putChunk(server, beta, session, held);
    const fresh = await putChunk(server, beta, session, chunkOf('N'));
    t.equal(known.status, fresh.status, 'same status');
    t.equal(known.status, 201);
    t.same({ ...known.body, digest: null }, { ...fresh.body, digest: null }, 'same body but for the name');
    const own = await putChunk(server, beta, session, held);
    t.equal(own.status, 200, 'sent twice in its own session: it knows it has it already');
    t.equal(own.body.created, false);
    const adminSession = await openSession(server, server.adminToken, 'gamma');
    t.equal(
      (await putChunk(server, server.adminToken, adminSession, chunkOf('N'))).body.created,
      false,
      'an admin is told the truth',
    );
  });

  t.test('a base image deleted while an incremental uploads: the commit succeeds and says so', async (t) => {
    const shared = chunkOf('S');
    const base = await commitImage(server, alpha, 'alpha', [shared, chunkOf('B')]);
    const session = await openSession(server, alpha, 'alpha', base.image);
    const changed = chunkOf('C');
    t.equal((await putChunk(server, alpha, session, changed)).status, 201);
    // The client skips `shared`: the base holds it. Then the base goes, and so does the chunk.
    const manifest = await volumeManifest(server, alpha, session, 'alpha', [shared.digest, changed.digest]);
    manifest.parent = base.image;
    t.equal((await api(server.url, 'DELETE', `/images/${base.image}`, { token: server.adminToken })).status, 200);
    const gc = await api(server.url, 'POST', '/gc', { token: server.adminToken, json: { graceSeconds: 0 } });
    t.equal(gc.status, 202);
    let job = gc.body;
    while (job.state === 'running') {
      await sleep(100);
      job = (await api(server.url, 'GET', `/gc/${job.id}`, { token: server.adminToken })).body;
    }
    t.equal(job.state, 'done', JSON.stringify(job));
    await t.rejects(
      fs.access(path.join(server.repo, chunkKey(shared.digest))),
      'the chunk only the deleted base referenced was collected',
    );

    const first = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: alpha, json: manifest });
    t.equal(first.status, 409, 'the collected chunk is asked for, not referenced');
    t.same(first.body.missing, [shared.digest]);
    t.equal((await putChunk(server, alpha, session, shared)).status, 201);
    const committed = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: alpha, json: manifest });
    t.equal(committed.status, 201, JSON.stringify(committed.body));
    const image = committed.body.image.id as string;
    t.equal(committed.body.image.parent, null);
    const stored = (await api(server.url, 'GET', `/images/${image}/manifest`, { token: alpha })).body as Manifest;
    t.equal(stored.parent, null, 'the manifest names no parent that does not exist');
    t.match(
      stored.warnings.join('\n'),
      new RegExp(
        `parent image ${base.image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was deleted while this image was uploading`,
      ),
    );

    const other = await openSession(server, alpha, 'alpha');
    const bogus = await volumeManifest(server, alpha, other, 'alpha', [changed.digest]);
    bogus.parent = 'alpha@20200101T000000Z';
    const refused = await api(server.url, 'POST', `/sessions/${other}/commit`, { token: alpha, json: bogus });
    t.equal(refused.status, 400, 'a parent the session was not opened with must still exist');
  });
});
