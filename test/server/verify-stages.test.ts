// The stages of verification, each run on its own against a real repository directory
// holding an image captured by the CLI: structure (manifest, indexes, chunk presence),
// content (a chunk re-hashed), restore stream (a volume reassembled), and the outcome
// (quarantine and image state) of a damaged chunk.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { VerificationFindings } from '../../server/jobs/verify-findings.js';
import { checkChunk, checkContent } from '../../server/jobs/verify-content.js';
import { recordOutcome } from '../../server/jobs/verify-outcome.js';
import { checkImageStructure, imagesInScope } from '../../server/jobs/verify-structure.js';
import { checkVolumeStream } from '../../server/jobs/verify-stream.js';
import { Repository } from '../../server/repository.js';
import { chunkKey, manifestKey, quarantineKey } from '../../server/store/store.js';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/log.js';
import { parseManifestText } from '../../src/format/manifest.js';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

t.test('verification stages on a real repository', async (t) => {
  const server = await startServer(t);
  const source = path.join(await tempDir(t), 'alpha.img');
  await writeMixedFile(source, 12 << 20, 5);
  const captured = await b365(['image', source, '--machine', 'alpha', '--json'], { env: server.env });
  t.equal(captured.exitCode, 0, captured.stderr);
  // The stages run in this process over the same directory, as the server's jobs do.
  await server.stop();
  const { repository } = await Repository.open(server.repo, { clock: systemClock, log: silentLogger });
  t.teardown(() => repository.close());

  const [image] = imagesInScope(repository, { all: true, images: [] });
  t.ok(image, 'the captured image is in scope');
  const manifestBytes = await repository.store.get(manifestKey(image!.machine, image!.timestamp));
  const manifest = parseManifestText(manifestBytes.toString('utf8'));
  const disk = manifest.disks[0]!;
  const volume = disk.volumes[0]!;
  const index = await repository.loadIndex(volume.index);
  const victim = index.get(1)!;
  const victimFile = path.join(server.repo, chunkKey(victim));

  t.test('structure: an intact image has its index and every chunk present', async (t) => {
    const findings = new VerificationFindings();
    await checkImageStructure(repository, image!, findings);
    const result = findings.result(image!.id);
    t.same(result.problems, []);
    t.same(result.indexRoots, [volume.index]);
    t.equal(result.chunksReferenced, index.distinctDigests().length);
    t.equal(result.chunksMissing, 0);
    t.equal(result.bytesRead, manifestBytes.length, 'the manifest was read');
  });

  t.test('restore stream: the intact volume reassembles to its content digest', async (t) => {
    const { verification, problem } = await checkVolumeStream(repository.store, index, disk, volume);
    t.equal(problem, null);
    t.equal(verification.streamDigest, volume.contentDigest);
    t.equal(verification.ok, true);
    const wrong = { id: volume.id, contentDigest: '0'.repeat(64) };
    const mismatch = await checkVolumeStream(repository.store, index, disk, wrong);
    t.equal(mismatch.verification.ok, false);
    t.match(mismatch.problem, `${disk.id}/${volume.id}: reassembled volume hashes to ${volume.contentDigest}`);
  });

  t.test('a damaged chunk', async (t) => {
    t.same(await checkChunk(repository.store, victim), { ok: true, bytes: (await fs.stat(victimFile)).size });
    const frame = await fs.readFile(victimFile);
    frame[frame.length - 20]! ^= 0x55;
    await fs.writeFile(victimFile, frame);

    t.equal((await checkChunk(repository.store, victim)).ok, false, 'content: it no longer hashes to its name');
    const { verification, problem } = await checkVolumeStream(repository.store, index, disk, volume);
    t.equal(verification.ok, false, 'restore stream: the volume is not whole');
    t.equal(verification.streamDigest, null);
    t.match(problem, victim, 'the problem names the damaged chunk');
    t.match(problem, `${disk.id}/${volume.id}`, 'and the volume it is in');

    const findings = new VerificationFindings();
    await checkImageStructure(repository, image!, findings);
    await checkContent(repository.store, findings.presentChunks(), findings);
    t.same([...findings.corrupt], [victim], 'content: exactly that chunk is corrupt');
    t.same([...(findings.damage.get(image!.id) ?? [])], [victim], 'the image lacks it');

    await recordOutcome(repository, 'stage-test', findings);
    t.same(findings.quarantined, [victim], 'outcome: it is quarantined');
    await fs.access(path.join(server.repo, quarantineKey(victim)));
    await t.rejects(fs.access(victimFile), 'and gone from its place');
    t.equal(repository.catalog.image(image!.id)!.state, 'failed', 'the image is marked failed');
    t.same(repository.catalog.imageDamage(image!.id), [victim], 'repairable by an upload of that chunk');
  });

  t.test('structure: a lost chunk is missing, and damage, not another problem', async (t) => {
    // The quarantined chunk is absent from the chunk store now.
    const findings = new VerificationFindings();
    await checkImageStructure(repository, image!, findings);
    const result = findings.result(image!.id);
    t.equal(result.chunksMissing, 1);
    t.same([...findings.missing], [victim]);
    t.same(result.problems, [], 'counted as missing when the outcome is recorded');
    t.equal(findings.otherProblems.size, 0);
    t.notOk(findings.presentChunks().includes(victim), 'the content stage does not read it');
  });
});
