// The catalog is a cache of the store: deleting it and reindexing gives back the same
// images, and the server works on as before.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('reindex from the store alone reproduces the image list', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  for (const [machine, seed] of [['one', 1], ['two', 2], ['one', 3]] as const) {
    const source = path.join(directory, `${machine}.img`);
    await writeMixedFile(source, 24 << 20, seed);
    const result = await b365(['image', source, '--machine', machine], { env: server.env });
    t.equal(result.exitCode, 0, result.stderr);
  }
  const before = (await b365(['images', '--json'], { env: server.env })).json.images;
  t.equal(before.length, 3);
  await server.stop();
  for (const suffix of ['', '-wal', '-shm']) await fs.rm(path.join(server.repo, `catalog.sqlite${suffix}`), { force: true });
  const reindex = await b365(['server', 'reindex', '--repo', server.repo, '--json']);
  t.equal(reindex.exitCode, 0, reindex.stderr);
  t.equal(reindex.json.images, 3);
  t.same(reindex.json.skipped, []);
  await server.restart();
  const after = (await b365(['images', '--json'], { env: server.env })).json.images;
  const comparable = (images: any[]) => images.map(({ id, machine, timestamp, createdAt, manifestDigest, parent, sizeBytes, usedBytes, uploadedBytes, state }) => ({ id, machine, timestamp, createdAt, manifestDigest, parent, sizeBytes, usedBytes, uploadedBytes, state }));
  t.same(comparable(after), comparable(before), 'same images, same manifests');
  const restore = await b365(['restore', 'one@latest', '--to', path.join(directory, 'back.img')], { env: server.env });
  t.equal(restore.exitCode, 0, `restore works after reindex: ${restore.stderr}`);
  const again = await b365(['image', path.join(directory, 'one.img'), '--machine', 'one', '--json'], { env: server.env });
  t.equal(again.json.chunksUploaded, 0, 'incremental still knows what the machine holds');
});
