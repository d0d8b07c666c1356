// The catalog is a cache of the store: deleting it and reindexing gives back the same
// images, and the server works on as before; a running server reconciles its catalog
// with its store without stopping uploads.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { chunkKey } from '../../server/store/store.js';
import { encodeChunk } from '../../src/format/chunk.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import { decodeFrame } from '../../src/format/lz4-frame.js';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('reindex from the store alone reproduces the image list', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  for (const [machine, seed] of [
    ['one', 1],
    ['two', 2],
    ['one', 3],
  ] as const) {
    const source = path.join(directory, `${machine}.img`);
    await writeMixedFile(source, 24 << 20, seed);
    const result = await b365(['image', source, '--machine', machine], { env: server.env });
    t.equal(result.exitCode, 0, result.stderr);
  }
  const before = (await b365(['images', '--json'], { env: server.env })).json.images;
  t.equal(before.length, 3);
  await server.stop();
  for (const suffix of ['', '-wal', '-shm'])
    await fs.rm(path.join(server.repo, `catalog.sqlite${suffix}`), { force: true });
  const reindex = await b365(['server', 'reindex', '--repo', server.repo, '--json']);
  t.equal(reindex.exitCode, 0, reindex.stderr);
  t.equal(reindex.json.images, 3);
  t.same(reindex.json.skipped, []);
  await server.restart();
  const after = (await b365(['images', '--json'], { env: server.env })).json.images;
  const comparable = (images: Record<string, unknown>[]) =>
    images.map(
      ({ id, machine, timestamp, createdAt, manifestDigest, parent, sizeBytes, usedBytes, uploadedBytes, state }) => ({
        id,
        machine,
        timestamp,
        createdAt,
        manifestDigest,
        parent,
        sizeBytes,
        usedBytes,
        uploadedBytes,
        state,
      }),
    );
  t.same(comparable(after), comparable(before), 'same images, same manifests');
  const restore = await b365(['restore', 'one@latest', '--to', path.join(directory, 'back.img')], { env: server.env });
  t.equal(restore.exitCode, 0, `restore works after reindex: ${restore.stderr}`);
  const again = await b365(['image', path.join(directory, 'one.img'), '--machine', 'one', '--json'], {
    env: server.env,
  });
  t.equal(again.json.chunksUploaded, 0, 'incremental still knows what the machine holds');
});

t.test('an online reindex reconciles a running server with its store and spares uploads in progress', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const admin = server.adminToken;
  const source = path.join(directory, 'disk.img');
  await writeMixedFile(source, 8 << 20, 4);
  for (const machine of ['kept', 'gone'])
    t.equal((await b365(['image', source, '--machine', machine], { env: server.env })).exitCode, 0);
  const [kept, gone] = [
    (await api(server.url, 'GET', '/images/kept@latest', { token: admin })).body,
    (await api(server.url, 'GET', '/images/gone@latest', { token: admin })).body,
  ];
  const manifest = (await api(server.url, 'GET', `/images/${kept.id}/manifest`, { token: admin })).body;
  const index = FixedIndex.parse(
    decodeFrame(await fs.readFile(path.join(server.repo, chunkKey(manifest.disks[0].volumes[0].index))), 1 << 30),
  );
  const lost = [...index.distinctDigests()][0]!;
  await fs.rm(path.join(server.repo, chunkKey(lost)));
  await fs.rm(path.join(server.repo, 'images', 'gone', gone.timestamp), { recursive: true });

  // An upload in progress: one chunk sent, nothing committed yet.
  const session = randomUUID();
  t.equal(
    (await api(server.url, 'POST', '/sessions', { token: admin, json: { id: session, machine: 'busy' } })).status,
    200,
  );
  const pending = encodeChunk(Buffer.alloc(256 << 10, 'p'));
  t.equal(
    (
      await api(server.url, 'PUT', `/sessions/${session}/chunks/${pending.digest}`, {
        token: admin,
        body: pending.frame,
      })
    ).status,
    201,
  );

  const machine = (
    await api(server.url, 'POST', '/tokens', { token: admin, json: { role: 'machine', machine: 'kept' } })
  ).body.token as string;
  t.equal(
    (await b365(['server', 'reindex', '--online'], { env: { ...server.env, B365_TOKEN: machine } })).exitCode,
    6,
    'admin only',
  );
  const reindex = await b365(['server', 'reindex', '--online', '--json'], { env: server.env });
  t.equal(reindex.exitCode, 0, reindex.stderr);
  t.same(reindex.json.changes, { imagesAdded: 0, imagesDropped: 1, objectsAdded: 0, objectsDropped: 1 });
  t.equal(reindex.json.images, 1);
  const missing = await api(server.url, 'POST', `/sessions/${session}/missing`, {
    token: admin,
    json: { digests: [lost, pending.digest] },
  });
  t.same(missing.body.missing, [lost], 'the lost chunk is asked for again; the pending upload is kept');
  t.equal(
    (await api(server.url, 'GET', `/images/${gone.id}`, { token: admin })).status,
    404,
    'the image whose manifest is gone is dropped',
  );

  const next = await b365(['image', source, '--machine', 'kept', '--json'], { env: server.env });
  t.equal(next.exitCode, 0, next.stderr);
  await fs.access(path.join(server.repo, chunkKey(lost)));
});
