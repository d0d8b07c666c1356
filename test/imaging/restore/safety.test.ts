// `b365 restore --yes` refuses a disk in use through a device stacked on it, with real
// loop devices: a loop over the target (the kernel has no dm or md here, and does not
// list a loop in its backing device's holders/), a filesystem kept alive after a lazy
// unmount (only the exclusive open sees it), and a read-only device. Not a byte written.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { digestOf } from '../../../src/format/digest.js';
import { b3sum } from '../../helpers/b3sum.js';
import { b365 } from '../../helpers/cli.js';
import { writeMixedFile } from '../../helpers/content.js';
import { attachLoop, makeImageFile, MiB, mount, run } from '../../helpers/disk.js';
import { startServer } from '../../helpers/server.js';
import { tempDir } from '../../helpers/tmp.js';

t.test('restore onto a disk in use through a stacked device is refused', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'source.img');
  await writeMixedFile(source, 8 * MiB, 41);
  const captured = await b365(['image', source, '--machine', 'stacked', '--json'], { env: server.env });
  t.equal(captured.exitCode, 0, captured.stderr);
  const restore = (target: string) => b365(['restore', 'stacked@latest', '--to', target, '--yes'], { env: server.env });
  // A restore of this 8 MiB source writes its first MiB first. The mounted filesystem
  // after it keeps writing to its own range (journal, inode tables), so only the range
  // outside it can show whether the restore wrote anything.
  const headDigest = async (file: string) => {
    const handle = await fs.open(file, 'r');
    try {
      const { buffer } = await handle.read(Buffer.alloc(MiB), 0, MiB, 0);
      return digestOf(buffer);
    } finally {
      await handle.close();
    }
  };

  t.test('a loop device over the target, its filesystem mounted, then not', async (t) => {
    const file = await makeImageFile(path.join(directory, 'target-a.img'), 64 * MiB);
    const disk = await attachLoop(t, file);
    // A "partition": a second loop device over the first, at an offset.
    const partition = await attachLoop(t, disk.device, { offset: MiB, size: 32 * MiB });
    await run('mkfs.ext4', ['-q', partition.device]);
    const mounted = await mount(t, partition.device);
    await fs.writeFile(path.join(mounted.path, 'precious.txt'), 'in use\n');
    await run('sync', []);
    const before = await headDigest(file);

    const refused = await restore(disk.device);
    t.equal(refused.exitCode, 8, refused.stderr);
    t.match(
      refused.stderr,
      `${disk.device} → ${path.basename(partition.device)} (over ${disk.device}) mounted at ${mounted.path}`,
      'the chain is named',
    );
    t.match(refused.stderr, /nothing was written/);
    t.equal(await headDigest(file), before, 'not a byte written before the partition');

    await mounted.unmount();
    const unmounted = await b3sum(file);
    const stillStacked = await restore(disk.device);
    t.equal(stillStacked.exitCode, 8, stillStacked.stderr);
    t.match(
      stillStacked.stderr,
      `${disk.device} → ${path.basename(partition.device)} (over ${disk.device}) is a loop device over it`,
      'an unmounted loop over it still holds it',
    );
    t.equal(await b3sum(file), unmounted, 'not a byte written');
  });

  t.test('a filesystem alive after a lazy unmount: the exclusive open refuses, with a clear message', async (t) => {
    const file = await makeImageFile(path.join(directory, 'target-b.img'), 64 * MiB);
    const disk = await attachLoop(t, file);
    await run('mkfs.ext4', ['-q', disk.device]);
    const mountPoint = await tempDir(t, 'b365-lazy-');
    await run('mount', [disk.device, mountPoint]);
    await makeImageFile(path.join(mountPoint, 'inner.img'), 4 * MiB);
    // A loop device over a file inside keeps the filesystem alive once it is unmounted.
    const inner = await attachLoop(t, path.join(mountPoint, 'inner.img'));
    await run('umount', ['-l', mountPoint]);
    const mountinfo = await fs.readFile('/proc/self/mountinfo', 'utf8');
    t.notMatch(mountinfo, mountPoint, 'the mount is gone from the mount table');

    const refused = await restore(disk.device);
    t.equal(refused.exitCode, 8, refused.stderr);
    t.match(refused.stderr, `refusing to restore onto ${disk.device}`);
    t.match(
      refused.stderr,
      /the kernel reports it busy \(nothing visible holds it: a filesystem on it may still be alive after a lazy unmount/,
    );
    t.notMatch(refused.stderr, /internal error| {4}at /, 'no stack trace');
    // Only now does the filesystem really end (and write its superblock): it must be whole.
    await inner.detach();
    t.equal(
      (await execa('e2fsck', ['-fn', file], { reject: false })).exitCode,
      0,
      'e2fsck -fn: the filesystem is intact',
    );
    t.match((await execa('debugfs', ['-R', 'ls -l /', file])).stdout, 'inner.img', 'its file is still there');
  });

  t.test('a read-only device', async (t) => {
    const file = await makeImageFile(path.join(directory, 'target-c.img'), 64 * MiB);
    const disk = await attachLoop(t, file, { readOnly: true });
    const refused = await restore(disk.device);
    t.equal(refused.exitCode, 8, refused.stderr);
    t.match(refused.stderr, `cannot restore onto ${disk.device}`);
    t.match(refused.stderr, /read-only/);
    t.notMatch(refused.stderr, /internal error| {4}at /, 'no stack trace');
  });

  t.test('a free loop device is still restored', async (t) => {
    const file = await makeImageFile(path.join(directory, 'target-d.img'), 64 * MiB);
    const disk = await attachLoop(t, file);
    const restored = await restore(disk.device);
    t.equal(restored.exitCode, 0, restored.stderr);
    const head = (await execa('sh', ['-c', `head -c ${8 * MiB} ${disk.device} | b3sum --no-names`])).stdout.trim();
    t.equal(head, await b3sum(source), 'the free disk was restored');
  });
});
