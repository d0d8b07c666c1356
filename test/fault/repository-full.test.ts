// A repository whose filesystem fills up during an upload (a small tmpfs): the low-space
// incident comes first; the upload fails fast with its own error and exit code instead
// of retrying as an outage; no temporary file piles up; restore, file reads and content
// verification of what was committed before keep working.
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { encodeChunk } from '../../src/format/chunk.js';
import { api, type ApiResponse } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { MiB } from '../helpers/disk.js';
import { tempDir } from '../helpers/tmp.js';
import { assertNothingLost, FaultRig, succeeded, tmpFiles, waitFor } from './helpers.js';

/** PUT one new chunk in a fresh session of `full`, as a client would, and return the answer. */
async function uploadOneChunk(rig: FaultRig): Promise<ApiResponse> {
  const session = randomUUID();
  await api(rig.server.url, 'POST', '/sessions', {
    token: rig.server.adminToken,
    json: { id: session, machine: 'full' },
  });
  const { digest, frame } = encodeChunk(randomBytes(MiB));
  return api(rig.server.url, 'PUT', `/sessions/${session}/chunks/${digest}`, {
    token: rig.server.adminToken,
    body: frame,
  });
}

t.test('repository full', async (t) => {
  const base = await tempDir(t, 'b365-full-');
  const repo = path.join(base, 'repo');
  await fs.mkdir(repo);
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${40 * MiB},mode=0700`, 'tmpfs', repo]);
  t.teardown(() => execa('umount', ['-l', repo], { reject: false }));
  const config = path.join(base, 'server.json');
  await fs.writeFile(config, JSON.stringify({ monitoring: { checkEvery: '1s', minFreeSpace: '38MiB' } }));
  const rig = await FaultRig.start(t, { repo, env: { B365_SERVER_CONFIG: config } });
  const small = await rig.disk('small', { dataMiB: 4 });
  const before = await rig.image(small, 'full');
  succeeded(t, before, 'an image that fits');
  // The repository now has less free space than configured: the incident comes before
  // the disk is full (once it is, the catalog cannot record anything).
  const incidents = await waitFor(
    'the low-space incident',
    async () => {
      const listed = await b365(['incidents', '--all', '--json'], { env: rig.env });
      return JSON.stringify(listed.json ?? '').includes('low-space') ? listed.json : undefined;
    },
    30_000,
  );
  t.ok(incidents, 'the low-space incident is raised before the repository is full');

  const big = await rig.disk('big', { dataMiB: 64 });
  const started = Date.now();
  const overflow = await rig.image(big, 'full', { env: { B365_RETRY_FOR_MS: '10000' } });
  const seconds = (Date.now() - started) / 1000;
  t.not(overflow.exitCode, 0, 'an image that does not fit fails');

  t.not(overflow.exitCode, 7, 'not reported as the server being unavailable');
  t.not(overflow.exitCode, 1, 'not an unexpected error');
  t.match(overflow.stderr, /repository.*full|full.*repository/i, 'the message says the repository is full');
  t.notMatch(overflow.stderr, /\n\s+at /, 'without a stack trace');
  t.ok(seconds < 15, `it gives up at once instead of retrying as an outage (${seconds.toFixed(1)} s)`);
  t.same(await tmpFiles(repo), [], 'no *.tmp file left by the failed writes while the server runs');
  const refused = await uploadOneChunk(rig);
  t.equal(refused.status, 507, 'a chunk upload is answered 507 Insufficient Storage');
  t.equal(refused.body?.code, 'repository_full', 'with the code repository_full');

  const image = before.json.image as string;
  const listing = await b365(['files', 'ls', image, '/'], { env: rig.env });
  succeeded(t, listing, 'files ls works while full');
  t.match(listing.stdout, /notes\.txt/, 'and lists the files');
  succeeded(
    t,
    await b365(['verify', image, '--level', 'content', '--json'], { env: rig.env }),
    'content verification runs while full',
  );
  const target = path.join(rig.directory, 'while-full.img');
  succeeded(t, await b365(['restore', image, '--to', target, '--yes'], { env: rig.env }), 'restore works while full');

  // Room again: everything committed before is intact.
  await execa('mount', ['-o', `remount,size=${256 * MiB}`, repo]);
  await assertNothingLost(t, rig);
});
