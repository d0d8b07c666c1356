// Garbage collection against commits, uploads and lost objects, in this process over a
// real repository directory holding images captured by the CLI. The store's manifest
// write, chunk listing, reserve check and removal are held at gates, so a commit or an
// upload and a collection interleave exactly as they can under load (the first case is
// the one a load run hit: the commit touches its objects, the collection starts and
// marks, the image is recorded, then the collection sweeps).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { Principal } from '../../server/auth.js';
import { GarbageCollector } from '../../server/jobs/gc.js';
import { Repository } from '../../server/repository.js';
import { CHUNKS_PREFIX, chunkKey, manifestKey } from '../../server/store/store.js';
import type { Clock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/log.js';
import { manifestVolumes, parseManifestText } from '../../src/format/manifest.js';
import { b365 } from '../helpers/cli.js';
import { writeMixedFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

/** A point the code under test stops at until the test lets it go on. */
class Gate {
  private release!: () => void;
  private arrive!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.release = resolve));
  readonly reached = new Promise<void>((resolve) => (this.arrive = resolve));
  async pass(): Promise<void> {
    this.arrive();
    await this.opened;
  }
  open(): void {
    this.release();
  }
}

/** Hold the next manifest write and the next listing of chunks at their gates. */
function gateStore(repository: Repository, manifestWrite: Gate, chunkListing: Gate): void {
  const store = repository.store;
  const put = store.put.bind(store);
  const list = store.list.bind(store);
  store.put = async (key, bytes, options) => {
    if (key.endsWith('/manifest.json')) await manifestWrite.pass();
    return put(key, bytes, options);
  };
  store.list = (prefix) =>
    (async function* () {
      if (prefix === CHUNKS_PREFIX) await chunkListing.pass();
      yield* list(prefix);
    })();
}

t.test('garbage collection against commits and lost indexes', async (t) => {
  const server = await startServer(t);
  const work = await tempDir(t);
  for (const [seed, machine] of ['alpha', 'beta', 'gamma', 'delta', 'epsilon'].entries()) {
    const disk = path.join(work, `${machine}.img`);
    await writeMixedFile(disk, 4 << 20, seed + 1);
    const captured = await b365(['image', disk, '--machine', machine, '--json'], { env: server.env });
    t.equal(captured.exitCode, 0, captured.stderr);
  }
  await server.stop();
  // Later than every file time the server wrote, moved by hand.
  let now = Date.now() + 60_000;
  const clock: Clock = { now: () => now };
  const { repository } = await Repository.open(server.repo, { clock, log: silentLogger });
  t.teardown(() => repository.close());
  const admin: Principal = {
    tokenId: repository.catalog.listTokens().find((token) => token.role === 'admin')!.id,
    role: 'admin',
    machine: null,
  };
  const collector = new GarbageCollector(repository, 3600, silentLogger);
  const imageOf = (machine: string) => repository.catalog.listImages(machine)[0]!;
  const manifestOf = async (machine: string) => {
    const image = imageOf(machine);
    return parseManifestText((await repository.store.get(manifestKey(image.machine, image.timestamp))).toString());
  };
  const present = async (digest: string) =>
    fs.access(path.join(server.repo, chunkKey(digest))).then(
      () => true,
      () => false,
    );

  t.test('an image committed while a collection marks keeps its objects', async (t) => {
    // An incremental capture reuses its base's index and chunks without uploading them;
    // retention then deletes the base while the new image commits.
    const base = imageOf('alpha');
    const { id: _id, createdAt: _createdAt, ...manifest } = await manifestOf('alpha');
    const session = repository.openSession(admin, { id: randomUUID(), machine: 'alpha', parent: base.id });
    await repository.removeImage(base);

    const manifestWrite = new Gate();
    const chunkListing = new Gate();
    gateStore(repository, manifestWrite, chunkListing);
    const commit = repository.commit(admin, session.id, { ...manifest, parent: base.id });
    await manifestWrite.reached; // its objects are found present, pinned and touched
    now += 1000;
    const job = collector.begin({ dryRun: false, graceSeconds: 0 });
    await chunkListing.reached; // marked: no image references the objects yet
    manifestWrite.open();
    const committed = await commit;
    chunkListing.open();
    await collector.idle();

    t.equal(collector.job(admin, job.id).state, 'done');
    const indexes = [...manifestVolumes(manifest)].map(({ volume }) => volume.index);
    for (const index of indexes) t.ok(await present(index), `index ${index} of ${committed.image.id} is kept`);
    const index = await repository.loadIndex(indexes[0]!);
    const lost = [];
    for (const digest of index.distinctDigests()) if (!(await present(digest))) lost.push(digest);
    t.same(lost, [], 'and every chunk it names');
  });

  t.test('an upload of an object being collected is stored', async (t) => {
    // The object is garbage (its image deleted) and another session sends it again; the
    // collection decides while the upload is between its checks and its write.
    const image = imageOf('gamma');
    const [{ volume }] = [...manifestVolumes(await manifestOf('gamma'))];
    const digest = (await repository.loadIndex(volume!.index)).get(0)!;
    const frame = await repository.store.get(chunkKey(digest));
    await repository.removeImage(image);
    const session = repository.openSession(admin, { id: randomUUID(), machine: 'gamma' });

    const reserveCheck = new Gate();
    const removal = new Gate();
    const { store } = repository;
    const freeBytes = store.freeBytes.bind(store);
    const remove = store.remove.bind(store);
    store.freeBytes = async () => {
      await reserveCheck.pass();
      return freeBytes();
    };
    store.remove = async (key) => {
      if (key === chunkKey(digest)) await removal.pass();
      return remove(key);
    };
    const upload = repository.putObject(admin, session.id, 'chunk', digest, frame);
    await reserveCheck.reached;
    now += 1000;
    collector.begin({ dryRun: false, graceSeconds: 0 });
    const collected = collector.idle();
    await Promise.race([removal.reached, collected]); // decided, and removing (or sparing) it
    reserveCheck.open();
    await upload; // found the file still there
    removal.open();
    await collected;
    t.ok(await present(digest), 'the uploaded object is in the store');
    t.ok(repository.catalog.objectInfo(digest), 'and in the catalog');
  });

  t.test('a commit late in its lease is not expired by a collection under way', async (t) => {
    const base = imageOf('delta');
    const { id: _id, createdAt: _createdAt, ...manifest } = await manifestOf('delta');
    const session = repository.openSession(admin, { id: randomUUID(), machine: 'delta', parent: base.id });
    await repository.removeImage(base);
    now += 59 * 60_000; // the last upload renewed the lease an hour ago, less a minute

    const manifestWrite = new Gate();
    const chunkListing = new Gate();
    chunkListing.open();
    gateStore(repository, manifestWrite, chunkListing);
    const commit = repository.commit(admin, session.id, { ...manifest, parent: base.id });
    await manifestWrite.reached;
    now += 2 * 60_000;
    collector.begin({ dryRun: false, graceSeconds: 0 });
    await collector.idle(); // the whole collection runs while the commit writes its manifest
    manifestWrite.open();
    await commit;
    const lost = [];
    for (const { volume } of manifestVolumes(manifest)) {
      if (!(await present(volume.index))) lost.push(volume.index);
      else
        for (const digest of (await repository.loadIndex(volume.index)).distinctDigests()) {
          if (!(await present(digest))) lost.push(digest);
        }
    }
    t.same(lost, [], 'every object of the committed image is kept');
  });

  t.test('a commit whose session expires meanwhile is refused', async (t) => {
    const base = imageOf('epsilon');
    const { id: _id, createdAt: _createdAt, ...manifest } = await manifestOf('epsilon');
    const session = repository.openSession(admin, { id: randomUUID(), machine: 'epsilon', parent: base.id });
    await repository.removeImage(base);
    const manifestWrite = new Gate();
    const chunkListing = new Gate();
    chunkListing.open();
    gateStore(repository, manifestWrite, chunkListing);
    const commit = repository.commit(admin, session.id, { ...manifest, parent: base.id });
    await manifestWrite.reached;
    now += 2 * 3600_000; // a commit stalled past its lease
    collector.begin({ dryRun: false, graceSeconds: 0 });
    await collector.idle();
    manifestWrite.open();
    await t.rejects(commit, { code: 'conflict', message: /ended while it committed/ });
    t.same(repository.catalog.listImages('epsilon'), [], 'no image is recorded');
  });

  t.test('a lost index fails its image; collections go on', async (t) => {
    const image = imageOf('beta');
    const [{ volume }] = [...manifestVolumes(await manifestOf('beta'))];
    await fs.rm(path.join(server.repo, chunkKey(volume!.index)));
    for (const run of ['first', 'next']) {
      now += 1000;
      const job = collector.begin({ dryRun: false, graceSeconds: 0 });
      await collector.idle();
      const finished = collector.job(admin, job.id);
      t.equal(finished.state, 'done', `the ${run} collection finishes: ${finished.error}`);
    }
    const after = repository.catalog.image(image.id)!;
    t.equal(after.state, 'failed', 'the image is marked failed');
    t.match(after.stateReason, volume!.index, 'naming its lost index');
    t.same(repository.catalog.imageDamage(image.id), [], 'an upload of the index alone does not repair it');
  });
});
