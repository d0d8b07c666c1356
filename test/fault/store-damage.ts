// One scenario of damage in the store under a committed image (a chunk with flipped
// bytes, truncated, or deleted): a restore stops naming the chunk, content verification
// reports it and marks the image, and the next image of the disk heals it.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Test } from 'tap';
import { chunkKey } from '../../server/store/store.js';
import { FixedIndex } from '../../src/format/fixed-index.js';
import { decodeFrame } from '../../src/format/lz4-frame.js';
import { api } from '../helpers/api.js';
import { b365 } from '../helpers/cli.js';
import { assertStoreIntact } from '../helpers/store.js';
import { assertNothingLost, FaultRig, succeeded } from './helpers.js';

export type Damage = 'corrupted' | 'deleted' | 'truncated';

/** A data chunk of the image's ext4 volume (not a hole), read from its index in the store. */
async function chunkOf(rig: FaultRig, image: string): Promise<string> {
  const manifest = (
    await api(rig.server.url, 'GET', `/images/${encodeURIComponent(image)}/manifest`, { token: rig.server.adminToken })
  ).body;
  const volume = manifest.disks[0].volumes.find(
    (candidate: { filesystem: { type: string } | null }) => candidate.filesystem?.type === 'ext4',
  );
  const index = FixedIndex.parse(
    decodeFrame(await fs.readFile(path.join(rig.server.repo, chunkKey(volume.index))), 1 << 30),
  );
  const digests = [...index.distinctDigests()];
  return digests[Math.floor(digests.length / 2)]!;
}

async function damage(file: string, how: Damage): Promise<void> {
  if (how === 'deleted') return fs.rm(file);
  const bytes = await fs.readFile(file);
  if (how === 'truncated') return fs.writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
  for (let position = 100; position < 140; position++) bytes[position]! ^= 0xa5;
  return fs.writeFile(file, bytes);
}

/** The scenario for one kind of damage: reported, marked, then healed by the next image. */
export async function damagedChunkScenario(t: Test, how: Damage): Promise<void> {
  const rig = await FaultRig.start(t);
  const disk = await rig.disk(`hurt-${how}`);
  const first = await rig.image(disk, 'hurt');
  succeeded(t, first, 'first image');
  const image = first.json.image as string;
  const victim = await chunkOf(rig, image);
  const victimFile = path.join(rig.server.repo, chunkKey(victim));
  await damage(victimFile, how);

  const target = path.join(rig.directory, 'target.img');
  const restore = await b365(['restore', image, '--to', target, '--yes'], { env: rig.env });
  t.not(restore.exitCode, 0, 'the restore fails');
  t.match(restore.stderr, victim, 'naming the damaged chunk');
  t.notMatch(restore.stderr, /\n\s+at /, 'without a stack trace');

  const verify = await b365(['verify', '--all', '--level', 'content', '--json'], { env: rig.env });
  t.equal(verify.exitCode, 9, 'content verification fails');
  t.match(JSON.stringify(verify.json?.report ?? {}), victim, 'its report names the chunk');
  const failed = (verify.json?.report?.images ?? [])
    .filter((entry: { result: string }) => entry.result === 'failed')
    .map((entry: { image: string }) => entry.image);
  t.same(failed, [image], 'and fails exactly the image that uses it');
  t.equal((await rig.images()).find((entry) => entry.id === image)?.state, 'failed', 'the catalog marks the image');

  const next = await rig.image(disk, 'hurt');
  succeeded(t, next, 'the next image of the same disk commits');
  t.ok(next.json?.chunksUploaded >= 1, `it sent the damaged chunk again (${next.json?.chunksUploaded} sent)`);
  const intact = await assertStoreIntact(rig.server.repo);
  t.same(intact.bad, [], 'the store is whole again');
  const back = await fs.access(victimFile).then(
    () => true,
    () => false,
  );
  t.ok(back, 'the chunk is back in its place');
  await assertNothingLost(t, rig);
}
