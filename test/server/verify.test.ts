// Verification an auditor can trust: a corrupted chunk is found, quarantined and
// blamed on exactly the images that use it; reports are signed and chained; the next
// image of the machine sends the chunk again.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { chunkKey } from '../../server/store/store.js';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { digestOf } from '../../src/format/digest.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import { decodeFrame } from '../../src/format/lz4-frame.js';

t.test('verification', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const env = server.env;
  const alpha = path.join(directory, 'alpha.img');
  const beta = path.join(directory, 'beta.img');
  await writeMixedFile(alpha, 24 << 20, 1);
  await writeMixedFile(beta, 24 << 20, 2);
  for (const [source, machine] of [
    [alpha, 'alpha'],
    [beta, 'beta'],
  ] as const)
    t.equal((await b365(['image', source, '--machine', machine], { env })).exitCode, 0);
  // A second alpha image with one region changed: both alpha images share most chunks.
  const handle = await fs.open(alpha, 'r+');
  await handle.write(Buffer.alloc(1 << 20, 9), 0, 1 << 20, 5 << 20);
  await handle.close();
  t.equal((await b365(['image', alpha, '--machine', 'alpha'], { env })).exitCode, 0);
  const images = (await b365(['images', '--json'], { env })).json.images as { id: string; machine: string }[];

  const auditor = (await b365(['token', 'create', '--role', 'auditor', '--json'], { env })).json.token as string;
  const auditorEnv = { ...env, B365_TOKEN: auditor };
  const keyFile = path.join(directory, 'server.pem');
  t.equal(
    (await b365(['keys', '--out', keyFile], { env: { B365_SERVER: server.url } })).exitCode,
    0,
    'the public key needs no token',
  );

  const firstReport = path.join(directory, 'first.json');
  const clean = await b365(['verify', '--all', '--level', 'content', '--json', '--out', firstReport], {
    env: auditorEnv,
  });
  t.equal(clean.exitCode, 0, clean.stderr);
  t.equal(clean.json.report.summary.images, 3);
  t.equal(clean.json.report.summary.failed, 0);
  t.equal(clean.json.report.summary.chunksCorrupt, 0);
  t.ok(
    clean.json.report.images.every(
      (image: { indexRoots: string[]; manifestDigest: string }) =>
        image.indexRoots.length === 1 && /^[0-9a-f]{64}$/.test(image.manifestDigest),
    ),
  );

  // Corrupt one chunk that only alpha's images use: pick it from alpha's first index.
  const manifest = (
    await api(server.url, 'GET', `/images/${images.find((image) => image.machine === 'alpha')!.id}/manifest`, {
      token: server.adminToken,
    })
  ).body;
  const indexFrame = await fs.readFile(path.join(server.repo, chunkKey(manifest.disks[0].volumes[0].index)));
  const index = FixedIndex.parse(decodeFrame(indexFrame, 1 << 30));
  const victim = index.get(2)!;
  const victimFile = path.join(server.repo, chunkKey(victim));
  const bytes = await fs.readFile(victimFile);
  bytes[bytes.length - 20] ^= 0x55;
  await fs.writeFile(victimFile, bytes);
  const users = images
    .filter((image) => image.machine === 'alpha')
    .map((image) => image.id)
    .sort();

  const secondReport = path.join(directory, 'second.json');
  const found = await b365(['verify', '--all', '--json', '--out', secondReport], { env: auditorEnv });
  t.equal(found.exitCode, 9, 'a failed verification exits 9');
  const report = found.json.report;
  t.same(report.corruptChunks, [victim], 'exactly the corrupted chunk');
  t.same(report.quarantined, [victim]);
  t.same(
    report.images
      .filter((image: { result: string }) => image.result === 'failed')
      .map((image: { image: string }) => image.image)
      .sort(),
    users,
    'exactly the images that use it',
  );
  t.equal(
    report.previousReport,
    digestOf(await fs.readFile(firstReport)),
    'the report names the digest of the previous one',
  );
  await t.rejects(fs.access(victimFile), 'the chunk left its place');
  await fs.access(path.join(server.repo, 'quarantine', victim));
  const states = (await b365(['images', '--json'], { env })).json.images as { id: string; state: string }[];
  t.same(
    states
      .filter((image) => image.state === 'failed')
      .map((image) => image.id)
      .sort(),
    users,
    'catalog marks them failed',
  );

  t.test('reports check offline, and fail after any edit', async (t) => {
    const check = await b365(['verify', 'check', secondReport, '--pubkey', keyFile]);
    t.equal(check.exitCode, 0, check.stderr);
    t.match(check.stdout, /OK: signature valid/);
    const document = JSON.parse(await fs.readFile(secondReport, 'utf8'));
    document.report.summary.failed = 0;
    const edited = path.join(directory, 'edited.json');
    await fs.writeFile(edited, JSON.stringify(document));
    const bad = await b365(['verify', 'check', edited, '--pubkey', keyFile]);
    t.equal(bad.exitCode, 9);
    t.match(bad.stderr, /altered or signed by another key/);
  });

  t.test('the next image of the machine sends the chunk again, and verifies', async (t) => {
    const next = await b365(['image', alpha, '--machine', 'alpha', '--json'], { env });
    t.equal(next.exitCode, 0, next.stderr);
    t.equal(next.json.parent, null, 'failed images are not a base');
    t.equal(next.json.chunksUploaded, 1, 'only the quarantined chunk is sent again');
    await fs.access(victimFile);
    const healedStates = (await b365(['images', '--json'], { env })).json.images as { id: string; state: string }[];
    t.same(
      healedStates.filter((image) => users.includes(image.id)).map((image) => image.state),
      users.map(() => 'ok'),
      'the images that lacked only that chunk are ok again as soon as it is back',
    );
    const stream = await b365(['verify', next.json.image, '--level', 'restore-stream', '--json'], { env: auditorEnv });
    t.equal(stream.exitCode, 0, stream.stderr);
    t.equal(stream.json.report.images[0].volumes[0].ok, true);
    const local = await b365(['verify', next.json.image, '--local', '--json'], { env });
    t.equal(local.exitCode, 0, local.stderr);
    t.equal(local.json.results[0].result, 'ok');
    const healed = await b365(['verify', users[0]!, '--json'], { env: auditorEnv });
    t.equal(healed.exitCode, 0, 'an image whose chunk came back verifies again');
  });

  t.test('auditors may verify but not read content; machines may not verify', async (t) => {
    const machine = (await b365(['token', 'create', '--role', 'machine', '--machine', 'alpha', '--json'], { env })).json
      .token as string;
    const denied = await b365(['verify', '--all'], { env: { ...env, B365_TOKEN: machine } });
    t.equal(denied.exitCode, 6);
    const local = await b365(['verify', 'alpha@latest', '--local'], { env: auditorEnv });
    t.equal(local.exitCode, 9, 'an auditor cannot fetch chunks, so a local check cannot pass');
  });
});
