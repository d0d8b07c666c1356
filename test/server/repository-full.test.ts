// A repository on a real, small ext4 filesystem that fills up during an upload: the
// client stops at once with its own exit code and message, no temporary file is left,
// reads (restore, content verification) keep working while the disk is full, and once
// space is freed the same command resumes the upload and commits.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ExitCode, RepositoryFullError } from '../../src/core/errors.js';
import { LocalStore } from '../../server/store/local.js';
import { api } from '../helpers/api.js';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { MiB, makeImageFile, run } from '../helpers/disk.js';
import { eventually } from '../helpers/notify-receivers.js';
import { createRestoreCode } from '../helpers/rescue.js';
import { startServer } from '../helpers/server.js';
import { listFiles } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh ext4 of `size` bytes mounted at `mountpoint`, with no blocks reserved for root (the server runs as root). */
async function mountSmallExt4(t: Teardown, image: string, mountpoint: string, size: number): Promise<void> {
  await makeImageFile(image, size);
  await run('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
  await fs.mkdir(mountpoint);
  await run('mount', ['-o', 'loop', image, mountpoint]);
  t.teardown(() => run('umount', [mountpoint]).catch(() => run('umount', ['-l', mountpoint])));
}

async function freeBytes(directory: string): Promise<number> {
  const stats = await fs.statfs(directory);
  return stats.bavail * stats.bsize;
}

/** Write `file` until the filesystem refuses: afterwards not even a small write fits. */
async function fillToTheBrim(file: string): Promise<void> {
  const handle = await fs.open(file, 'w');
  const block = randomBytes(64 << 10);
  try {
    for (let size = block.length; size >= 512; size >>= 1) {
      for (;;) {
        try {
          await handle.write(block, 0, size);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw error;
        }
      }
    }
    await handle.sync().catch(() => undefined);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

t.test('a repository whose disk fills during an upload', async (t) => {
  const work = await tempDir(t, 'b365-full-');
  const repo = path.join(work, 'repo');
  await mountSmallExt4(t, path.join(work, 'repo-fs.img'), repo, 48 * MiB);
  const config = path.join(work, 'server.json');
  await fs.writeFile(
    config,
    JSON.stringify({ monitoring: { checkEvery: '1s', heartbeatTimeout: '3h', minFreeSpace: '20MiB' } }),
  );
  const server = await startServer(t, { repo, env: { B365_SERVER_CONFIG: config } });

  // The earlier image holds a filesystem, so that file access can be tried while full.
  const content = path.join(work, 'content');
  await fs.mkdir(content);
  const dataFile = randomBytes(3 * MiB);
  await fs.writeFile(path.join(content, 'data.bin'), dataFile);
  const earlier = path.join(work, 'earlier.img');
  await makeImageFile(earlier, 8 * MiB);
  await run('mkfs.ext4', ['-q', '-F', '-d', content, earlier]);
  const first = await b365(['image', earlier, '--machine', 'full', '--json'], { env: server.env });
  t.equal(first.exitCode, 0, first.stderr);
  const earlierImage = first.json.image as string;

  // Leave about 16 MiB: below the configured minimum, so the incident comes first.
  const filler = path.join(repo, 'filler');
  await fs.writeFile(filler, Buffer.alloc(Math.max(0, (await freeBytes(repo)) - 16 * MiB), 1));
  const incident = await eventually(
    'a low-space incident',
    async () =>
      (
        (await api(server.url, 'GET', '/incidents', { token: server.adminToken })).body.incidents as {
          kind: string;
          state: string;
          summary: string;
        }[]
      ).find((item) => item.kind === 'low-space' && item.state === 'open'),
    20_000,
  );
  t.match(
    incident.summary,
    /free, less than the 20\.0 MiB configured/,
    'the low-space incident is raised before the disk is full',
  );

  const bigger = path.join(work, 'bigger.img');
  await fs.writeFile(bigger, randomBytes(24 * MiB));
  const started = Date.now();
  const full = await b365(['image', bigger, '--machine', 'full'], { env: server.env, timeout: 90_000 });
  const seconds = (Date.now() - started) / 1000;
  t.equal(
    full.exitCode,
    ExitCode.repositoryFull,
    `exit code of a full repository (stderr ends: ${full.stderr.slice(-400)})`,
  );
  t.ok(seconds < 30, `the client gave up at once instead of retrying an outage (${seconds.toFixed(1)} s)`);
  t.match(full.stderr, new RegExp(`the repository on ${server.url.replace(/[.]/g, '\\.')} is full`));
  t.match(full.stderr, /nothing was committed; free space or prune, then run again/);
  t.match(full.stderr, /the upload resumes/);
  t.notMatch(full.stderr, /internal server error|\n\s+at /, 'no internal error, no stack');
  t.same(await listFiles(path.join(repo, 'tmp')), [], 'no temporary file left in tmp/');
  t.same(
    (await listFiles(repo)).filter((file) => file.endsWith('.tmp')),
    [],
    'no *.tmp anywhere in the repository',
  );

  // Uploads stopped short of the end of the disk: a technician's restore code still works.
  const code = await createRestoreCode(server, 'full');
  const technician = {
    B365_SERVER: server.url,
    B365_RESTORE_CODE: code.code,
    B365_STATE_DIR: server.env.B365_STATE_DIR!,
  };
  const byCode = path.join(work, 'restored-by-code.img');
  const codeRestore = await b365(['restore', earlierImage, '--to', byCode], { env: technician, timeout: 90_000 });
  t.equal(
    codeRestore.exitCode,
    0,
    `restore with a restore code after uploads filled the repository: ${codeRestore.stderr.slice(-400)}`,
  );
  t.equal(await b3sum(byCode), await b3sum(earlier));

  // Now not even a small write fits; reads must still work.
  await fillToTheBrim(path.join(repo, 'filler-rest'));
  t.ok((await freeBytes(repo)) < 64 << 10, 'the repository filesystem is full');
  // A server (re)started on a full disk still opens its catalog and serves reads.
  await server.restart();
  const restored = path.join(work, 'restored.img');
  const restore = await b365(['restore', earlierImage, '--to', restored], { env: server.env, timeout: 90_000 });
  t.equal(restore.exitCode, 0, `restore works while full: ${restore.stderr.slice(-400)}`);
  t.equal(await b3sum(restored), await b3sum(earlier), 'the restored image is the earlier disk');
  const listing = await b365(['files', 'ls', earlierImage, '/', '--json'], { env: server.env, timeout: 90_000 });
  t.equal(listing.exitCode, 0, `files ls works while full: ${listing.stderr.slice(-400)}`);
  t.match(listing.stdout, /data\.bin/);
  const extracted = path.join(work, 'extracted');
  const get = await b365(['files', 'get', earlierImage, '/data.bin', '--to', extracted], {
    env: server.env,
    timeout: 90_000,
  });
  t.equal(get.exitCode, 0, `files get works while full: ${get.stderr.slice(-400)}`);
  t.ok(
    dataFile.equals(await fs.readFile(path.join(extracted, 'data.bin'))),
    'the file read back while full is the one imaged',
  );
  const verify = await b365(['verify', earlierImage, '--level', 'content'], { env: server.env, timeout: 90_000 });
  t.equal(verify.exitCode, 0, `content verification works while full: ${verify.stdout}${verify.stderr.slice(-400)}`);
  t.match(verify.stdout, /1 of 1 image ok/);
  t.match(verify.stderr, /report could not be stored/, 'says that the signed report could not be kept');
  t.same(
    (await listFiles(repo)).filter((file) => file.endsWith('.tmp')),
    [],
    'writes refused while full (report, image state) left no *.tmp',
  );
  const listed = await b365(['images', '--machine', 'full', '--json'], { env: server.env });
  t.equal(listed.exitCode, 0, listed.stderr);
  t.same(
    (listed.json.images ?? listed.json).map((image: { id: string }) => image.id),
    [earlierImage],
    'nothing half-committed is listed',
  );

  // Free the space: the same command resumes the interrupted session and commits.
  await fs.rm(filler);
  await fs.rm(path.join(repo, 'filler-rest'));
  const again = await b365(['image', bigger, '--machine', 'full', '--json'], { env: server.env, timeout: 120_000 });
  t.equal(again.exitCode, 0, again.stderr);
  t.equal(again.json.resumed, true, 'the upload resumed the interrupted session');
  t.ok(again.json.chunksUploaded <= 40, `only what was missing was sent (${again.json.chunksUploaded} chunks)`);
  const restoredBigger = path.join(work, 'restored-bigger.img');
  t.equal((await b365(['restore', again.json.image, '--to', restoredBigger], { env: server.env })).exitCode, 0);
  t.equal(await b3sum(restoredBigger), await b3sum(bigger));
});

t.test('the store on a full filesystem refuses with RepositoryFullError and leaves tmp/ empty', async (t) => {
  const work = await tempDir(t, 'b365-full-store-');
  const root = path.join(work, 'store');
  await fs.mkdir(root);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', root]);
  t.teardown(() => run('umount', [root]).catch(() => run('umount', ['-l', root])));
  const store = await LocalStore.open(root);
  t.same(await store.put('reports/first.json', randomBytes(2 * MiB)), { created: true });
  for (const ifAbsent of [true, false]) {
    await t.rejects(
      store.put('reports/second.json', randomBytes(3 * MiB), { ifAbsent }),
      RepositoryFullError,
      `put${ifAbsent ? ' if absent' : ''} on a full disk`,
    );
    t.same(await listFiles(path.join(root, 'tmp')), [], 'the partial temporary file was removed');
    t.equal(await store.stat('reports/second.json'), null, 'nothing under the final name');
  }
  t.equal((await store.get('reports/first.json')).length, 2 * MiB, 'what was stored before is intact');
});
