// Writes to a target that cannot take them: on a real full filesystem (a tmpfs) writeFully
// goes on after the short write the kernel gives when space runs out, then fails with a
// DeviceWriteError naming the file and the byte, for single writes and for partition table
// writes alike; on a FUSE file whose writes take no bytes it fails the same way, not loops.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { writeFully } from '../../imaging/device.js';
import { applyDiskWrites } from '../../imaging/partition/write.js';
import { DeviceWriteError } from '../../src/core/errors.js';
import { execa } from 'execa';
import { MiB, run } from '../helpers/disk.js';
import { FUSE_FILE } from '../helpers/fuse-zero-write.js';
import { tempDir } from '../helpers/tmp.js';

const WRITE_TIMEOUT = 10_000;

/** A tmpfs of `size` bytes on a new directory, unmounted at teardown. */
async function tinyFilesystem(t: Test, size: number): Promise<string> {
  const directory = await tempDir(t, 'b365-full-');
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', directory]);
  t.teardown(() => run('umount', [directory]));
  return directory;
}

/** The outcome of a write, or a failure of its own when it neither ends nor fails in time. */
async function settle(write: Promise<void>): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Error>((resolve) => {
    timer = setTimeout(() => resolve(new Error('the write neither finished nor failed in time')), WRITE_TIMEOUT);
  });
  try {
    return await Promise.race([
      write.then(
        () => null,
        (error: unknown) => error,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('writeFully on a full filesystem', async (t) => {
  const directory = await tinyFilesystem(t, MiB);
  const file = path.join(directory, 'target.img');
  const handle = await fs.open(file, 'w+');
  t.teardown(() => handle.close());
  const error = await settle(writeFully(handle, Buffer.alloc(3 * MiB, 0xab), 0, file));
  const stored = (await fs.stat(file)).size;
  t.ok(stored > 0 && stored <= MiB, `the short write was taken and went on (${stored} bytes stored)`);
  t.type(error, DeviceWriteError);
  t.equal(
    (error as Error).message,
    `${file}: cannot write at byte ${stored}: no space left (a full filesystem, or past the end of the device)`,
  );
});

t.test('partition table writes on a full filesystem', async (t) => {
  const directory = await tinyFilesystem(t, 64 * 1024);
  const file = path.join(directory, 'disk.img');
  const handle = await fs.open(file, 'w+');
  t.teardown(() => handle.close());
  const error = await settle(
    applyDiskWrites(
      handle,
      [
        { offset: 0, bytes: Buffer.alloc(512, 1) },
        { offset: 4096, bytes: Buffer.alloc(128 * 1024, 2) },
      ],
      file,
    ),
  );
  t.type(error, DeviceWriteError);
  const stored = (await fs.stat(file)).size;
  t.ok(stored > 4096 && stored < 4096 + 128 * 1024, `the second write was taken in part (${stored} bytes stored)`);
  t.match((error as Error).message, new RegExp(`^${file}: cannot write at byte ${stored}: no space left`));
});

/** A mounted FUSE filesystem whose file takes no bytes; unmounted at teardown. */
async function zeroWriteFile(t: Test): Promise<string> {
  const mountPoint = await tempDir(t, 'b365-fuse-');
  const helper = fileURLToPath(new URL('../helpers/fuse-zero-write.js', import.meta.url));
  const server = execa('node', [helper, mountPoint], { reject: false });
  t.teardown(async () => {
    await execa('umount', [mountPoint], { reject: false });
    await server;
  });
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on('data', (data: Buffer) => {
      if (data.toString().includes('mounted')) resolve();
    });
    server.then((result) => reject(new Error(`the FUSE filesystem did not mount: ${String(result.stderr)}`)));
  });
  return path.join(mountPoint, FUSE_FILE);
}

t.test('a write that takes no bytes fails, naming the device and byte, instead of looping', async (t) => {
  const file = await zeroWriteFile(t);
  const handle = await fs.open(file, 'r+');
  t.teardown(() => handle.close());
  t.equal((await handle.write(Buffer.alloc(512), 0, 512, 0)).bytesWritten, 0, 'the kernel reports 0 bytes written');
  const error = await settle(writeFully(handle, Buffer.alloc(4096, 1), 8192, file));
  t.type(error, DeviceWriteError);
  t.equal((error as Error).message, `${file}: the write at byte 8192 took no bytes (the device is full or at its end)`);
  const tableError = await settle(applyDiskWrites(handle, [{ offset: 512, bytes: Buffer.alloc(512) }], file));
  t.type(tableError, DeviceWriteError, 'partition table writes the same way');
});
