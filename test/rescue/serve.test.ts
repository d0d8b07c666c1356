// `b365.serve`: the rescue system mounts a repository disk and serves it. Run here on a
// real ext4 image file through a loop device, a real server on 127.0.0.1 and real HTTPS.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import t from 'tap';
import { RepositoryClient } from '../../src/client/repository.js';
import { createLogger } from '../../src/core/log.js';
import { ConsoleEcho } from '../../src/rescue/console.js';
import { runServe } from '../../src/rescue/serve.js';
import { attachLoop, makeImageFile, MiB } from '../helpers/disk.js';
import { opensslFingerprint } from '../helpers/tls.js';
import { tempDir } from '../helpers/tmp.js';

function captured(): { echo: ConsoleEcho; text: () => string } {
  const output = new PassThrough();
  let text = '';
  output.on('data', (data: Buffer) => (text += data.toString()));
  return { echo: new ConsoleEcho(output, []), text: () => text };
}

async function isMounted(directory: string): Promise<boolean> {
  return (await execa('mountpoint', ['-q', directory], { reject: false })).exitCode === 0;
}

const log = createLogger({ level: 'error' });

t.test('serves the repository on the disk until stopped, then unmounts it', async (t) => {
  const directory = await tempDir(t, 'b365-serve-');
  const image = await makeImageFile(path.join(directory, 'repository.img'), 64 * MiB);
  await execa('mkfs.ext4', ['-q', '-F', image]);
  const loop = await attachLoop(t, image);
  const mountpoint = path.join(directory, 'mnt');
  const { echo, text } = captured();
  const stop = new AbortController();
  const serving = runServe({
    settings: { device: loop.device, listen: '127.0.0.1:0', network: { mode: 'none' }, diskWaitSeconds: 1 },
    echo,
    log,
    signal: stop.signal,
    mountpoint,
  });
  // A failed assertion must still stop the server, or the disk stays busy and mounted.
  t.teardown(async () => {
    stop.abort();
    await serving.catch(() => undefined);
    await execa('umount', [mountpoint], { reject: false });
  });
  for (let waited = 0; !/B365-SERVING/.test(text()) && waited < 300; waited++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  const url = /B365-SERVING (https:\/\/\S+) repository (\S+) mounted at (\S+) fingerprint (\S+)/.exec(text());
  t.ok(url, 'one B365-SERVING line names the HTTPS URL, the disk, the mount point and the fingerprint', {
    output: text(),
  });
  t.equal(url?.[2], loop.device);
  t.equal(
    url?.[4],
    await opensslFingerprint(path.join(mountpoint, 'keys', 'tls.crt')),
    "the fingerprint is that of the repository's certificate (openssl)",
  );
  const client = new RepositoryClient({ server: url![1]!, token: '', fingerprint: url![4]!, retryForMs: 0 });
  t.equal((await client.health()).ok, true, 'the server answers a client that pins that fingerprint');
  await client.close();
  t.ok(await fs.stat(path.join(mountpoint, 'admin.token')), 'the repository is created on the mounted disk');
  stop.abort();
  await serving;
  t.notOk(await isMounted(mountpoint), 'stopping unmounts the disk');
});

t.test('a disk without a filesystem fails with a clear message', async (t) => {
  const directory = await tempDir(t, 'b365-serve-');
  const image = await makeImageFile(path.join(directory, 'blank.img'), 8 * MiB);
  const loop = await attachLoop(t, image);
  const { echo, text } = captured();
  const settings = {
    device: loop.device,
    listen: '127.0.0.1:0',
    network: { mode: 'none' as const },
    diskWaitSeconds: 1,
  };
  await t.rejects(
    runServe({ settings, echo, log, signal: new AbortController().signal, mountpoint: path.join(directory, 'mnt') }),
    { name: 'UnavailableError', message: new RegExp(`cannot mount ${loop.device}`) },
  );
  t.match(text(), /B365-SERVE-FAILED cannot mount/, 'the consoles say why');
});

t.test('a disk that never appears fails naming it', async (t) => {
  const { echo } = captured();
  const settings = {
    device: '/dev/b365-no-such-disk',
    listen: '127.0.0.1:0',
    network: { mode: 'none' as const },
    diskWaitSeconds: 0,
  };
  await t.rejects(runServe({ settings, echo, log, signal: new AbortController().signal, mountpoint: '/nonexistent' }), {
    name: 'NotFoundError',
    message: /disk \/dev\/b365-no-such-disk did not appear/,
  });
});
