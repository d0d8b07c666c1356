// The repository API against a real server process on 127.0.0.1: what is refused,
// with which status and code, and that a refusal leaves nothing behind.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { encodeChunk } from '../../src/format/chunk.js';
import { digestOf } from '../../src/format/digest.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import type { Manifest } from '../../src/format/manifest.js';
import { operations } from '../../server/openapi.js';
import { api } from '../helpers/api.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { listFiles, storedChunks } from '../helpers/store.js';
import { rawDiskManifest } from '../helpers/manifest.js';

async function token(server: TestServer, role: string, machine?: string): Promise<string> {
  const response = await api(server.url, 'POST', '/tokens', { token: server.adminToken, json: { role, machine } });
  if (response.status !== 201) throw new Error(`token create failed: ${JSON.stringify(response.body)}`);
  return response.body.token as string;
}

async function openSession(server: TestServer, authToken: string, machine: string): Promise<string> {
  const id = randomUUID();
  const response = await api(server.url, 'POST', '/sessions', { token: authToken, json: { id, machine } });
  if (response.status !== 200) throw new Error(`session open failed: ${JSON.stringify(response.body)}`);
  return id;
}

/** Upload one chunk and its index in a session; returns the manifest to commit. */
async function uploadVolume(
  server: TestServer,
  authToken: string,
  session: string,
  machine: string,
  seed: string,
): Promise<{ manifest: Manifest; chunk: string }> {
  const data = Buffer.alloc(256 << 10, seed);
  const { digest, frame } = encodeChunk(data);
  const put = await api(server.url, 'PUT', `/sessions/${session}/chunks/${digest}`, { token: authToken, body: frame });
  if (put.status !== 201 && put.status !== 200) throw new Error(`chunk upload failed: ${JSON.stringify(put.body)}`);
  const index = new FixedIndex(256 << 10, 256 << 10);
  index.set(0, digest);
  const indexBytes = index.encode();
  const indexDigest = digestOf(indexBytes);
  await api(server.url, 'PUT', `/sessions/${session}/indexes/${indexDigest}`, {
    token: authToken,
    body: encodeFrame(indexBytes),
  });
  return { manifest: rawDiskManifest(machine, index, indexDigest), chunk: digest };
}

t.test('repository API', async (t) => {
  const server = await startServer(t);
  const admin = server.adminToken;

  t.test('first start leaves an admin token readable only by root', async (t) => {
    const stats = await fs.stat(path.join(server.repo, 'admin.token'));
    t.equal(stats.mode & 0o777, 0o600);
  });

  t.test('no token, a bad token: 401', async (t) => {
    t.equal((await api(server.url, 'GET', '/images')).status, 401);
    const bad = await api(server.url, 'GET', '/images', { token: 'b365_nope' });
    t.equal(bad.status, 401);
    t.equal(bad.body.code, 'unauthorized');
  });

  t.test('a chunk that does not hash to its name: 400 and nothing stored', async (t) => {
    const session = await openSession(server, admin, 'mismatch');
    const { frame } = encodeChunk(Buffer.alloc(300 << 10, 7));
    const claimed = digestOf(Buffer.from('something else'));
    const before = await storedChunks(server.repo);
    const response = await api(server.url, 'PUT', `/sessions/${session}/chunks/${claimed}`, {
      token: admin,
      body: frame,
    });
    t.equal(response.status, 400);
    t.equal(response.body.code, 'digest_mismatch');
    t.match(response.body.message, /nothing was stored/);
    t.same(await storedChunks(server.repo), before, 'no chunk file appeared');
    t.same(await listFiles(path.join(server.repo, 'tmp')), [], 'no temporary file left');
    const garbage = await api(server.url, 'PUT', `/sessions/${session}/chunks/${claimed}`, {
      token: admin,
      body: Buffer.from('not a frame at all, just text'),
    });
    t.equal(garbage.status, 400);
    t.match(garbage.body.message, /not an LZ4 frame/);
    const truncated = await api(
      server.url,
      'PUT',
      `/sessions/${session}/chunks/${digestOf(Buffer.alloc(300 << 10, 7))}`,
      { token: admin, body: frame.subarray(0, frame.length - 8) },
    );
    t.equal(truncated.status, 400);
    t.match(truncated.body.message, /truncated/);
    t.same(await storedChunks(server.repo), before);
  });

  t.test('a commit naming an absent chunk: 409 naming it, and no image', async (t) => {
    const session = await openSession(server, admin, 'absent');
    const absent = digestOf(Buffer.from('never uploaded'));
    const index = new FixedIndex(256 << 10, 512 << 10);
    index.set(0, absent);
    const indexBytes = index.encode();
    const indexDigest = digestOf(indexBytes);
    t.equal(
      (
        await api(server.url, 'PUT', `/sessions/${session}/indexes/${indexDigest}`, {
          token: admin,
          body: encodeFrame(indexBytes),
        })
      ).status,
      201,
    );
    const response = await api(server.url, 'POST', `/sessions/${session}/commit`, {
      token: admin,
      json: rawDiskManifest('absent', index, indexDigest),
    });
    t.equal(response.status, 409);
    t.equal(response.body.code, 'missing_objects');
    t.equal(response.body.digest, absent);
    t.match(response.body.message, new RegExp(`first ${absent}`));
    t.same((await api(server.url, 'GET', '/images?machine=absent', { token: admin })).body.images, []);
    t.same(await listFiles(path.join(server.repo, 'images')), []);

    const missingIndex = rawDiskManifest('absent', index, digestOf(Buffer.from('no such index')));
    const noIndex = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: admin, json: missingIndex });
    t.equal(noIndex.status, 409);
    t.equal(noIndex.body.kind, 'index');
  });

  t.test('a malformed manifest: 400 naming the JSON path', async (t) => {
    const session = await openSession(server, admin, 'malformed');
    const { manifest } = await uploadVolume(server, admin, session, 'malformed', 'm');
    const bad = structuredClone(manifest);
    Object.assign(bad.disks[0]!.volumes[0]!, { chunkSize: 'big' });
    const response = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: admin, json: bad });
    t.equal(response.status, 400);
    t.equal(response.body.code, 'bad_format');
    t.equal(response.body.message, 'invalid manifest: /disks/0/volumes/0/chunkSize: must be integer');
    const notJson = await fetch(`${server.url}/api/v1/sessions/${session}/commit`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: '{"format":',
    });
    t.equal(notJson.status, 400);
    t.match(((await notJson.json()) as { message: string }).message, /not valid JSON/);
    const stamped = { ...manifest, id: 'malformed@20260101T000000Z' };
    t.match(
      (await api(server.url, 'POST', `/sessions/${session}/commit`, { token: admin, json: stamped })).body.message,
      /assigned by the server/,
    );
    const ok = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: admin, json: manifest });
    t.equal(ok.status, 201, 'the well-formed manifest then commits');
    t.match(ok.body.image.id, /^malformed@\d{8}T\d{6}Z$/);
    const again = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: admin, json: manifest });
    t.equal(again.status, 200, 'committing again is idempotent');
    t.equal(again.body.image.id, ok.body.image.id);
  });

  t.test('oversized bodies: 413', async (t) => {
    const session = await openSession(server, admin, 'big');
    const huge = Buffer.alloc((8 << 20) + 4096, 1);
    const chunk = await api(server.url, 'PUT', `/sessions/${session}/chunks/${'a'.repeat(64)}`, {
      token: admin,
      body: huge,
    });
    t.equal(chunk.status, 413);
    t.equal(chunk.body.code, 'payload_too_large');
    const json = await api(server.url, 'POST', `/sessions/${session}/missing`, {
      token: admin,
      json: { digests: Array.from({ length: 70000 }, () => 'a'.repeat(64)) },
    });
    t.equal(json.status, 413);
    const batch = await api(server.url, 'POST', `/sessions/${session}/missing`, {
      token: admin,
      json: { digests: Array.from({ length: 10001 }, () => 'a'.repeat(64)) },
    });
    t.equal(batch.status, 400);
    t.match(batch.body.message, /at most 10000 digests/);
  });

  t.test('roles: machine tokens stay on their machine, auditors never read content', async (t) => {
    const alpha = await token(server, 'machine', 'alpha');
    const beta = await token(server, 'machine', 'beta');
    const auditor = await token(server, 'auditor');
    const session = await openSession(server, alpha, 'alpha');
    const { manifest, chunk } = await uploadVolume(server, alpha, session, 'alpha', 'x');
    const committed = await api(server.url, 'POST', `/sessions/${session}/commit`, { token: alpha, json: manifest });
    t.equal(committed.status, 201);
    const image = committed.body.image.id as string;

    t.equal(
      (await api(server.url, 'POST', '/sessions', { token: beta, json: { id: randomUUID(), machine: 'alpha' } }))
        .status,
      403,
      'beta cannot write alpha',
    );
    t.equal(
      (await api(server.url, 'GET', `/images/${image}/manifest`, { token: beta })).status,
      403,
      'beta cannot read alpha manifests',
    );
    t.equal((await api(server.url, 'GET', `/images/${image}`, { token: beta })).status, 403);
    t.same(
      (await api(server.url, 'GET', '/images', { token: beta })).body.images,
      [],
      'beta lists only its own images',
    );
    t.equal(
      (await api(server.url, 'GET', `/chunks/${chunk}`, { token: beta })).status,
      404,
      'beta cannot read alpha chunks (and cannot tell they exist)',
    );
    t.equal(
      (await api(server.url, 'DELETE', `/images/${image}`, { token: alpha })).status,
      403,
      'a machine cannot delete, even its own',
    );
    t.equal((await api(server.url, 'POST', '/tokens', { token: alpha, json: { role: 'admin' } })).status, 403);

    const betaSession = await openSession(server, beta, 'beta');
    const probe = await api(server.url, 'POST', `/sessions/${betaSession}/missing`, {
      token: beta,
      json: { digests: [chunk] },
    });
    t.same(probe.body.missing, [chunk], "beta is told alpha's chunk is missing: no probing across machines");
    const own = await api(server.url, 'POST', `/sessions/${await openSession(server, alpha, 'alpha')}/missing`, {
      token: alpha,
      json: { digests: [chunk] },
    });
    t.same(own.body.missing, [], 'alpha is told its own chunk is present');
    t.same(
      (await api(server.url, 'POST', `/sessions/${session}/missing`, { token: beta, json: { digests: [chunk] } }))
        .status,
      403,
      "beta cannot use alpha's session",
    );

    t.equal((await api(server.url, 'GET', `/chunks/${chunk}`, { token: alpha })).status, 200, 'alpha reads its chunk');
    t.equal(
      (await api(server.url, 'GET', `/images/${image}/manifest`, { token: auditor })).status,
      200,
      'auditor reads manifests',
    );
    t.equal(
      (await api(server.url, 'GET', `/indexes/${manifest.disks[0]!.volumes[0]!.index}`, { token: auditor })).status,
      200,
      'auditor reads indexes',
    );
    const denied = await api(server.url, 'GET', `/chunks/${chunk}`, { token: auditor });
    t.equal(denied.status, 403, 'auditor cannot download chunks');
    t.equal(denied.body.code, 'forbidden');
    t.equal(
      (await api(server.url, 'POST', '/sessions', { token: auditor, json: { id: randomUUID(), machine: 'alpha' } }))
        .status,
      403,
    );
    t.equal((await api(server.url, 'DELETE', `/images/${image}`, { token: admin })).status, 200, 'admin deletes');
  });

  t.test('the OpenAPI document lists every route, and every listed route exists', async (t) => {
    const document = await api(server.url, 'GET', '/openapi.json');
    t.equal(document.status, 200);
    t.equal(document.body.openapi, '3.1.0');
    for (const operation of operations) {
      t.ok(document.body.paths[operation.path]?.[operation.method], `${operation.method} ${operation.path} documented`);
      const placeholder = operation.path.startsWith('/tokens')
        ? '999999'
        : operation.path.startsWith('/sessions')
          ? randomUUID()
          : 'alpha@latest';
      const concrete = operation.path
        .replace('{id}', placeholder)
        .replace('{digest}', 'a'.repeat(64))
        .replace('{machine}', 'alpha');
      const response = await api(server.url, operation.method.toUpperCase(), concrete, {
        token: admin,
        json: operation.body ? {} : undefined,
      });
      t.notMatch(String(response.body?.message ?? ''), /no such endpoint/, `${operation.method} ${concrete} is served`);
    }
    const unknown = await api(server.url, 'GET', '/nope', { token: admin });
    t.equal(unknown.status, 404);
    t.match(unknown.body.message, /no such endpoint/);
  });
});
