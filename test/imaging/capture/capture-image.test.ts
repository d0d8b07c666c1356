// captureImage called directly against a real server and a small real disk (GPT, ext4
// and a raw partition): an interrupted upload resumes by its state file, a chunk the
// repository lost is read again from the disk at commit, a failure commits nothing, and
// an unreadable base index costs a warning, not the capture.
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { type CaptureOptions, captureImage } from '../../../imaging/capture/image.js';
import { planSources } from '../../../imaging/capture/sources.js';
import { chunkKey } from '../../../server/store/store.js';
import { RepositoryClient } from '../../../src/client/repository.js';
import { FormatError, UserError } from '../../../src/core/errors.js';
import type { Volume } from '../../../src/format/manifest.js';
import { b3sum } from '../../helpers/b3sum.js';
import { Prng } from '../../helpers/content.js';
import { MiB, makeImageFile, run, sfdisk } from '../../helpers/disk.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { listFiles } from '../../helpers/store.js';
import { tempDir } from '../../helpers/tmp.js';

const RAW_START = 9 * MiB;
const RAW_SIZE = 14 * MiB;

/** 24 MiB GPT disk: ext4 in p1 (captured by used blocks), 14 MiB of distinct bytes in p2 (raw). */
async function buildDisk(directory: string, seed: number): Promise<string> {
  const image = await makeImageFile(path.join(directory, `disk-${seed}.img`), 24 * MiB);
  await sfdisk(image, 'label: gpt\nstart=1MiB, size=8MiB, name="root"\nstart=9MiB, size=14MiB, name="data"\n');
  await run('mkfs.ext4', ['-q', '-F', '-E', `offset=${1 * MiB}`, image, '8M']);
  const data = Buffer.alloc(RAW_SIZE);
  new Prng(seed).fill(data);
  const handle = await fs.open(image, 'r+');
  await handle.write(data, 0, data.length, RAW_START);
  await handle.close();
  return image;
}

/** A logger whose warnings the test reads. */
function recordingLogger(): { log: CaptureOptions['log']; warnings: string[] } {
  const warnings: string[] = [];
  const sink = new Writable({
    write(line, _encoding, done) {
      const record = JSON.parse(String(line)) as { level: number; msg: string };
      if (record.level >= 40) warnings.push(record.msg);
      done();
    },
  });
  return { log: pino({ level: 'warn' }, sink), warnings };
}

interface Rig {
  server: TestServer;
  directory: string;
  client(): RepositoryClient;
  capture(image: string, machine: string, extra?: Partial<CaptureOptions>): ReturnType<typeof captureImage>;
}

async function rig(t: Test): Promise<Rig> {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const client = (): RepositoryClient => {
    const created = new RepositoryClient({ server: server.url, token: server.adminToken, retryForMs: 0 });
    t.teardown(() => created.close());
    return created;
  };
  const shared = client();
  return {
    server,
    directory,
    client,
    async capture(image, machine, extra = {}) {
      const { disks } = await planSources([image], { chunkSize: 'auto', live: 'refuse' });
      return captureImage({
        client: shared,
        machine,
        disks,
        stateDirectory: path.join(directory, `state-${machine}`),
        ...extra,
      });
    },
  };
}

async function stateFiles(rig: Rig, machine: string): Promise<string[]> {
  return listFiles(path.join(rig.directory, `state-${machine}`, 'sessions'));
}

async function rawVolume(client: RepositoryClient, image: string): Promise<Volume> {
  const { manifest } = await client.manifest(image);
  return manifest.disks[0]!.volumes.find((volume) => volume.offset === RAW_START)!;
}

/** A chunk of the raw partition, with where it lies on the disk. */
async function dataChunk(client: RepositoryClient, image: string): Promise<{ digest: string; offset: number }> {
  const volume = await rawVolume(client, image);
  const index = await client.index(volume.index);
  const position = 5;
  return { digest: index.get(position)!, offset: volume.offset + position * volume.chunkSize };
}

t.test('captureImage', async (t) => {
  const shared = await rig(t);
  const client = shared.client();

  t.test('a chunk the repository lost is read again from the disk at commit', async (t) => {
    const image = await buildDisk(shared.directory, 2);
    const first = await shared.capture(image, 'lossy');
    const lost = await dataChunk(client, first.image);
    const file = path.join(shared.server.repo, chunkKey(lost.digest));
    await fs.rm(file);
    const { log, warnings } = recordingLogger();
    const second = await shared.capture(image, 'lossy', { log });
    t.equal(second.parent, first.image, 'an incremental of the first image');
    t.match(warnings, [/server lacks objects the base image held/], 'the repair is logged');
    await t.resolves(fs.access(file), 'the lost chunk is back in the store');
    await t.resolves(client.chunk(lost.digest), 'and reads back, hashing to its name');
  });

  t.test('the disk changed before the repair: refused, nothing committed', async (t) => {
    const image = await buildDisk(shared.directory, 3);
    const first = await shared.capture(image, 'changing');
    const lost = await dataChunk(client, first.image);
    await fs.rm(path.join(shared.server.repo, chunkKey(lost.digest)));
    const second = shared.capture(image, 'changing', {
      // Synchronously: the commit starts as soon as this returns.
      onStage: (stage) => {
        if (stage !== 'committing') return;
        const descriptor = fsSync.openSync(image, 'r+');
        fsSync.writeSync(descriptor, Buffer.alloc(4096, 0x5a), 0, 4096, lost.offset);
        fsSync.closeSync(descriptor);
      },
    });
    await t.rejects(second, FormatError);
    await t.rejects(second, /changed while it was being imaged/);
    t.equal((await client.image('changing@latest')).id, first.image, 'the first image is still the latest');
  });

  t.test('a failure while reading commits nothing and keeps the session for the next run', async (t) => {
    const image = await buildDisk(shared.directory, 4);
    const failing = shared.capture(image, 'failing', {
      beforeVolume: async (_disk, volume) => {
        if (volume.offset === RAW_START) throw new UserError('cannot freeze the data partition');
      },
    });
    await t.rejects(failing, /cannot freeze the data partition/);
    await t.rejects(client.image('failing@latest'), 'no image');
    t.equal((await stateFiles(shared, 'failing')).length, 1, 'the state file is kept');
    const rerun = await shared.capture(image, 'failing');
    t.equal(rerun.resumed, true, 'the next run resumes');
  });

  t.test('an unreadable base index: a warning, and the capture still commits', async (t) => {
    const image = await buildDisk(shared.directory, 5);
    const first = await shared.capture(image, 'noindex');
    const volume = await rawVolume(client, first.image);
    const indexFile = path.join(shared.server.repo, chunkKey(volume.index));
    await fs.rm(indexFile);
    const { log, warnings } = recordingLogger();
    const second = await shared.capture(image, 'noindex', { log });
    t.match(warnings, [/base index unreadable/], 'the unreadable base index is logged');
    t.equal(second.parent, first.image);
    t.equal(second.chunksUploaded, 0, 'its chunks were compared with the server, which holds them');
    await t.resolves(fs.access(indexFile), 'the index is stored again');
    t.equal((await rawVolume(client, second.image)).contentDigest, volume.contentDigest);
  });

  // Last: the server is killed and restarted.
  t.test('an interrupted upload resumes its session by the state file, then forgets it', async (t) => {
    const image = await buildDisk(shared.directory, 1);
    // The server dies just as the client commits: everything was sent, nothing committed.
    const first = shared.capture(image, 'resumer', {
      onStage: (stage) => {
        if (stage === 'committing') shared.server.process.kill('SIGKILL');
      },
    });
    await t.rejects(first, 'the first run fails at the commit');
    const [stateFile] = await stateFiles(shared, 'resumer');
    t.ok(stateFile, 'the state file of the session is kept');
    const saved = JSON.parse(await fs.readFile(stateFile!, 'utf8')) as { sessionId: string };
    await shared.server.process;
    await shared.server.restart();

    const { disks } = await planSources([image], { chunkSize: 'auto', live: 'refuse' });
    // A new client: the old one's connections died with the server.
    const fresh = shared.client();
    const report = await captureImage({
      client: fresh,
      machine: 'resumer',
      disks,
      stateDirectory: path.join(shared.directory, 'state-resumer'),
    });
    t.equal(report.resumed, true, 'the rerun says it resumed');
    t.equal(report.session, saved.sessionId, 'in the session the state file named');
    t.equal(report.chunksUploaded, 0, 'nothing sent twice');
    t.same(await stateFiles(shared, 'resumer'), [], 'the state file is gone after the commit');
    const raw = path.join(shared.directory, 'raw.bin');
    await fs.writeFile(raw, (await fs.readFile(image)).subarray(RAW_START, RAW_START + RAW_SIZE));
    t.equal(
      (await rawVolume(fresh, report.image)).contentDigest,
      await b3sum(raw),
      'the raw partition as b3sum sees it',
    );
  });
});
