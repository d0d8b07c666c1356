// A repository directory on this machine, no server running: a real GPT disk (FAT32 ESP,
// ext4) captured into it and restored from it, an incremental capture that sends only
// what changed, and the same directory then served as is by `b365 server`, locked
// against a second opener while the server runs and released when the server dies.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import t, { type Test } from 'tap';
import { ExitCode } from '../../src/core/errors.js';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { Prng } from '../helpers/content.js';
import { attachLoop, MiB, mount } from '../helpers/disk.js';
import { buildGptDisk, snapshotFat, snapshotTree, tableDump } from '../helpers/fixtures.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT_PARTITION = 4;

/** The restored disk against its source: table, e2fsck, every ext4 file, every ESP file. */
async function compareWithSource(t: Test, source: string, restored: string, espOffset: number): Promise<void> {
  const a = await attachLoop(t, source, { readOnly: true });
  const b = await attachLoop(t, restored, { readOnly: true });
  t.equal(await tableDump(b.device), await tableDump(a.device), 'sfdisk --dump is identical');
  const fsck = await execa('e2fsck', ['-fn', b.partition(ROOT_PARTITION)], { reject: false });
  t.equal(fsck.exitCode, 0, 'e2fsck -fn finds the restored ext4 clean');
  const mountA = await mount(t, a.partition(ROOT_PARTITION), { options: 'ro' });
  const mountB = await mount(t, b.partition(ROOT_PARTITION), { options: 'ro' });
  t.same(await snapshotTree(mountB.path), await snapshotTree(mountA.path), 'every ext4 file equal');
  await mountB.unmount();
  await mountA.unmount();
  await b.detach();
  await a.detach();
  t.same(await snapshotFat(restored, espOffset), await snapshotFat(source, espOffset), 'every ESP file equal');
}

/** Add a few MiB of new content to the source's ext4, as a day of use would. */
async function changeSource(t: Test, image: string): Promise<void> {
  const loop = await attachLoop(t, image);
  const root = await mount(t, loop.partition(ROOT_PARTITION));
  const content = Buffer.alloc(2 * MiB);
  new Prng(99).fill(content);
  await fs.writeFile(path.join(root.path, 'new-today.bin'), content);
  await root.unmount();
  await loop.detach();
}

t.test('capture to and restore from a repository directory, then serve it', async (t) => {
  const directory = await tempDir(t);
  const repo = path.join(directory, 'usb', 'backup365');
  // No B365_SERVER: nothing could be reached even if the command tried.
  const env = { B365_STATE_DIR: path.join(directory, 'state'), B365_SERVER: 'http://127.0.0.1:9' };
  const disk = await buildGptDisk(t, directory, 192 * MiB);

  const first = await b365(['image', disk.image, '--machine', 'site-pc', '--repo', repo, '--json'], { env });
  t.equal(first.exitCode, 0, first.stderr);
  t.ok(first.json.chunksUploaded > 50, `the first capture sent ${first.json.chunksUploaded} chunks`);
  t.ok((await fs.stat(path.join(repo, 'catalog.sqlite'))).isFile(), 'the directory became a repository');

  const restored = path.join(directory, 'restored.img');
  const restore = await b365(['restore', 'site-pc@latest', '--to', restored, '--repo', repo, '--yes', '--json'], {
    env,
  });
  t.equal(restore.exitCode, 0, restore.stderr);
  t.equal(restore.json.verified, true, 'the restore verified its content digests');
  await compareWithSource(t, disk.image, restored, disk.espOffset);

  await changeSource(t, disk.image);
  const second = await b365(['image', disk.image, '--machine', 'site-pc', '--repo', repo, '--json'], { env });
  t.equal(second.exitCode, 0, second.stderr);
  t.equal(second.json.parent, first.json.image, 'the second image is incremental on the first');
  t.ok(second.json.chunksReused > 0, `${second.json.chunksReused} chunks reused`);
  t.ok(
    second.json.chunksUploaded > 0 && second.json.chunksUploaded <= 12,
    `only the changed chunks were sent (${second.json.chunksUploaded})`,
  );
  t.ok(second.json.bytesUploaded < 6 * MiB, `${second.json.bytesUploaded} bytes uploaded`);

  const listed = await b365(['images', '--repo', repo, '--json'], { env });
  t.same(
    listed.json.images.map((image: { id: string }) => image.id),
    [first.json.image, second.json.image],
  );

  t.test('the directory served as is by b365 server', async (t) => {
    const server = await startServer(t, { repo });
    const overHttp = await b365(['images', '--json'], { env: server.env });
    t.same(
      overHttp.json.images.map((image: { id: string }) => image.id),
      [first.json.image, second.json.image],
      'the server lists the images captured without it',
    );
    const again = path.join(directory, 'restored-over-http.img');
    const fromServer = await b365(['restore', first.json.image, '--to', again, '--yes', '--json'], {
      env: server.env,
    });
    t.equal(fromServer.exitCode, 0, fromServer.stderr);
    t.equal(await b3sum(again), await b3sum(restored), 'restored over HTTP, byte for byte the local restore');

    const refused = await b365(['image', disk.image, '--machine', 'site-pc', '--repo', repo], { env });
    t.equal(refused.exitCode, ExitCode.conflict);
    t.equal(
      refused.stderr,
      `b365: repository ${repo} is in use by b365 server (pid ${server.process.pid} on host ${os.hostname()})\n`,
    );
    await server.kill();
    const afterKill = await b365(['images', '--repo', repo, '--json'], { env });
    t.equal(afterKill.exitCode, 0, `a killed server leaves the directory usable: ${afterKill.stderr}`);
  });

  t.test('a manifest changed in the directory is refused', async (t) => {
    const [machine, timestamp] = first.json.image.split('@');
    const file = path.join(repo, 'images', machine, timestamp, 'manifest.json');
    await fs.appendFile(file, ' ');
    const tampered = await b365(['restore', first.json.image, '--to', path.join(directory, 'x.img'), '--repo', repo]);
    t.equal(tampered.exitCode, ExitCode.badInput);
    t.match(tampered.stderr, /manifest of site-pc@\S+ hashes to [0-9a-f]{64}, the catalog recorded/);
  });
});

t.test('reading a directory that is not a repository', async (t) => {
  const directory = await tempDir(t);
  const empty = path.join(directory, 'empty');
  await fs.mkdir(empty);
  const notRepository = await b365(['restore', 'pc@latest', '--to', path.join(directory, 'x.img'), '--repo', empty]);
  t.equal(notRepository.exitCode, ExitCode.notFound);
  t.match(notRepository.stderr, `b365: ${empty} is not a Backup365 repository (it has no catalog.sqlite)`);
  t.same(await fs.readdir(empty), [], 'nothing was written into it');

  const absent = path.join(directory, 'absent');
  const missing = await b365(['files', 'ls', 'pc@latest', '/', '--repo', absent]);
  t.equal(missing.exitCode, ExitCode.notFound);
  t.equal(missing.stderr, `b365: repository directory ${absent} does not exist\n`);
  await t.rejects(fs.stat(absent), 'it was not created');

  const both = await b365(['images', '--repo', empty, '--server', 'http://127.0.0.1:9']);
  t.equal(both.exitCode, ExitCode.usage);
  t.match(both.stderr, /choose --repo DIR .* or --server URL, not both/);
});
