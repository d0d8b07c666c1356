// File-level restore from images, without restoring the disk: `files ls`, `files get`
// (and --tar), the HTTP file routes and the NBD export, against the mounted source.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { api } from '../helpers/api.js';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { Prng } from '../helpers/content.js';
import { attachLoop, makeImageFile, MiB, mount, run, sfdisk } from '../helpers/disk.js';
import { snapshotFat, snapshotTree } from '../helpers/fixtures.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

/** 20 000 small files, deep directories, Unicode names; links where the filesystem has them. */
async function fillTree(
  root: string,
  options: { links: boolean; xattrs: boolean; sparse: boolean; big: string },
): Promise<void> {
  const prng = new Prng(7);
  for (let directory = 0; directory < 100; directory++) {
    const dir = path.join(root, 'many', `d${String(directory).padStart(3, '0')}`);
    await fs.mkdir(dir, { recursive: true });
    await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        const file = path.join(dir, `f${index}.txt`);
        await fs.writeFile(file, `file ${directory}/${index} ${prng.next()}\n`.repeat(1 + (index % 5)));
        await fs.utimes(file, new Date('2023-01-02T03:04:05Z'), new Date(Date.UTC(2023, 0, 2, 3, 4, 5) + index * 2000));
      }),
    );
  }
  let deep = path.join(root, 'deep');
  for (let level = 0; level < 25; level++) deep = path.join(deep, `level-${level}`);
  await fs.mkdir(deep, { recursive: true });
  await fs.writeFile(path.join(deep, 'bottom.txt'), 'at the bottom\n');
  await fs.mkdir(path.join(root, 'ünïcødé'), { recursive: true });
  await fs.writeFile(path.join(root, 'ünïcødé', 'naïve café 日本語.txt'), 'unicode\n');
  await fs.copyFile(options.big, path.join(root, 'big.bin'));
  await fs.writeFile(path.join(root, 'ten-mib.bin'), (await fs.readFile(options.big)).subarray(0, 10 * MiB));
  if (options.sparse) {
    const handle = await fs.open(path.join(root, 'sparse.bin'), 'w');
    await handle.write(Buffer.from('start'), 0, 5, 0);
    await handle.write(Buffer.from('middle'), 0, 6, 50 * MiB);
    await handle.truncate(120 * MiB);
    await handle.close();
  }
  if (options.links) {
    await fs.symlink('ünïcødé/naïve café 日本語.txt', path.join(root, 'link-relative'));
    await fs.symlink('/etc/passwd', path.join(root, 'link-absolute'));
    await fs.link(path.join(root, 'many', 'd000', 'f1.txt'), path.join(root, 'hard-link.txt'));
    await fs.chmod(path.join(root, 'many', 'd001', 'f2.txt'), 0o4750);
    await fs.chown(path.join(root, 'many', 'd001', 'f2.txt'), 1001, 1002);
  }
  if (options.xattrs) {
    await execa('setfattr', ['-n', 'user.note', '-v', 'from the image', path.join(root, 'many', 'd000', 'f0.txt')]);
    await execa('setfacl', ['-m', 'u:1234:rw', path.join(root, 'many', 'd000', 'f3.txt')]);
  }
}

t.test('files from ext4, FAT32 and NTFS volumes of one image', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const big = path.join(directory, 'big-source.bin');
  await execa('sh', ['-c', `head -c ${200 * MiB} /dev/urandom > ${big}`]);
  // A 4 GiB disk: the one-file test below reads 10 MiB out of it.
  const disk = await makeImageFile(path.join(directory, 'disk.img'), 4096 * MiB);
  await sfdisk(
    disk,
    'label: gpt\nsize=2600MiB, type=linux\nsize=560MiB, type=uefi\ntype=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n',
  );
  const loop = await attachLoop(t, disk);
  await run('mkfs.ext4', ['-q', '-O', '^metadata_csum', loop.partition(1)]);
  await run('mkfs.vfat', ['-F', '32', loop.partition(2)]);
  await run('mkntfs', ['-Q', '-F', loop.partition(3)]);
  const ext = await mount(t, loop.partition(1));
  await fillTree(ext.path, { links: true, xattrs: true, sparse: true, big });
  await ext.unmount();
  const ntfs = await mount(t, loop.partition(3), { type: 'ntfs-3g' });
  await fillTree(ntfs.path, { links: true, xattrs: false, sparse: true, big });
  await ntfs.unmount();
  await loop.detach();
  const fatTree = path.join(directory, 'fat-tree');
  await fillTree(fatTree, { links: false, xattrs: false, sparse: false, big });
  const fatOffset = 2601 * MiB;
  await execa(
    'mcopy',
    [
      '-s',
      '-m',
      '-i',
      `${disk}@@${fatOffset}`,
      ...(await fs.readdir(fatTree)).map((name) => path.join(fatTree, name)),
      '::/',
    ],
    { env: { MTOOLS_SKIP_CHECK: '1', TZ: 'UTC' } },
  );
  await fs.rm(fatTree, { recursive: true });

  const captured = await b365(['image', disk, '--machine', 'files-pc', '--json'], { env: server.env });
  t.equal(captured.exitCode, 0, captured.stderr);
  const image = captured.json.image as string;

  const sourceLoop = await attachLoop(t, disk, { readOnly: true });
  for (const [number, kind] of [
    [1, 'ext4'],
    [3, 'ntfs'],
  ] as const) {
    t.test(`${kind}: files get of the whole tree equals the source`, async (t) => {
      const out = await tempDir(t, 'b365-files-');
      const got = await b365(['files', 'get', image, '/', '--volume', String(number), '--to', out, '--json'], {
        env: server.env,
      });
      t.equal(got.exitCode, 0, got.stderr);
      t.ok(got.json.files >= 20000, `${got.json.files} files extracted`);
      const source = await mount(
        t,
        sourceLoop.partition(number),
        kind === 'ntfs' ? { type: 'ntfs-3g', options: 'ro' } : { options: 'ro' },
      );
      const expected = await snapshotTree(source.path, { xattrs: kind === 'ext4' });
      const actual = await snapshotTree(out, { xattrs: kind === 'ext4' });
      t.same(
        actual,
        expected,
        `SHA-256, mode, owner, mtime, link targets, hard links${kind === 'ext4' ? ', xattrs' : ''}`,
      );
      if (kind === 'ext4') {
        const acl = await execa('getfacl', ['-c', path.join(out, 'many', 'd000', 'f3.txt')]);
        t.match(acl.stdout, /user:1234:rw-/, 'POSIX ACL restored');
        const stats = await fs.stat(path.join(out, 'sparse.bin'));
        t.ok(stats.blocks * 512 < 10 * MiB, 'the sparse file stays sparse');
      }

      const listing = await b365(['files', 'ls', image, '/many/d000', '--volume', String(number), '--json'], {
        env: server.env,
      });
      t.equal(listing.exitCode, 0, listing.stderr);
      const mounted = await Promise.all(
        (await fs.readdir(path.join(source.path, 'many', 'd000'))).sort().map(async (name) => {
          const stats = await fs.lstat(path.join(source.path, 'many', 'd000', name));
          return {
            name,
            size: stats.size,
            mode: stats.mode & 0o7777,
            mtime: new Date(Math.floor(stats.mtimeMs)).toISOString(),
          };
        }),
      );
      t.same(
        listing.json.entries.map((entry: { name: string; size: number; mode: number; mtime: string }) => ({
          name: entry.name,
          size: entry.size,
          mode: entry.mode,
          mtime: entry.mtime,
        })),
        mounted,
        'files ls equals the mounted listing',
      );
      await source.unmount();
    });
  }

  t.test('FAT32: files get equals what mtools extracts', async (t) => {
    const out = await tempDir(t, 'b365-files-');
    const got = await b365(['files', 'get', image, '/', '--volume', '2', '--to', out, '--json'], { env: server.env });
    t.equal(got.exitCode, 0, got.stderr);
    // FAT names are case-insensitive, and mtools lowercases only ASCII under the NT
    // lowercase flag ("ÜnÏcØdÉ"): compare names case-folded.
    const fold = (entries: Record<string, string>) =>
      Object.fromEntries(Object.entries(entries).map(([name, value]) => [name.toLowerCase(), value]));
    const expected = fold(await snapshotFat(disk, fatOffset));
    const actual: Record<string, string> = {};
    for (const [name, entry] of Object.entries(await snapshotTree(out)))
      if (entry.type === 'file') actual[name] = `${entry.sha256} ${entry.mtimeMs}`;
    t.same(fold(actual), expected);
  });

  t.test('reading one 10 MiB file fetches only the chunks it needs', async (t) => {
    const before = (await api(server.url, 'GET', '/stats', { token: server.adminToken })).body;
    const out = await tempDir(t, 'b365-one-');
    const got = await b365(['files', 'get', image, '/ten-mib.bin', '--volume', '1', '--to', out, '--json'], {
      env: server.env,
    });
    t.equal(got.exitCode, 0, got.stderr);
    const after = (await api(server.url, 'GET', '/stats', { token: server.adminToken })).body;
    const chunks = after.chunksServed - before.chunksServed;
    const manifest = (await api(server.url, 'GET', `/images/${image}/manifest`, { token: server.adminToken })).body;
    const chunkSize = manifest.disks[0].volumes.find((volume: { id: string }) => volume.id === 'p1')
      .chunkSize as number;
    t.ok(
      chunks * chunkSize < 32 * MiB,
      `${chunks} chunks of ${chunkSize} bytes fetched for a 10 MiB file in a ${manifest.disks[0].size}-byte image`,
    );
    t.equal(
      createHash('sha256')
        .update(await fs.readFile(path.join(out, 'ten-mib.bin')))
        .digest('hex'),
      createHash('sha256')
        .update((await fs.readFile(big)).subarray(0, 10 * MiB))
        .digest('hex'),
    );
  });

  t.test('HTTP: listing, bytes with Range, tar; auditors refused', async (t) => {
    const listing = await api(server.url, 'GET', `/images/${image}/volumes/1/files/many/d000`, {
      token: server.adminToken,
    });
    t.equal(listing.status, 200);
    t.equal(listing.body.entries.length, 200);
    const whole = await api(server.url, 'GET', `/images/${image}/volumes/1/files/ten-mib.bin`, {
      token: server.adminToken,
    });
    t.equal(whole.bytes.length, 10 * MiB);
    const ranged = await fetch(`${server.url}/api/v1/images/${encodeURIComponent(image)}/volumes/1/files/ten-mib.bin`, {
      headers: { authorization: `Bearer ${server.adminToken}`, range: 'bytes=1000-1999' },
    });
    t.equal(ranged.status, 206);
    t.equal(ranged.headers.get('content-range'), `bytes 1000-1999/${10 * MiB}`);
    t.same(Buffer.from(await ranged.arrayBuffer()), whole.bytes.subarray(1000, 2000));
    const tar = await fetch(
      `${server.url}/api/v1/images/${encodeURIComponent(image)}/volumes/1/files/deep?archive=tar`,
      { headers: { authorization: `Bearer ${server.adminToken}` } },
    );
    const tarFile = path.join(directory, 'deep.tar');
    await fs.writeFile(tarFile, Buffer.from(await tar.arrayBuffer()));
    t.match(await run('tar', ['-tf', tarFile]), /deep\/level-0\/.*level-24\/bottom\.txt/);
    const auditor = (await b365(['token', 'create', '--role', 'auditor', '--json'], { env: server.env })).json.token;
    t.equal(
      (await api(server.url, 'GET', `/images/${image}/volumes/1/files/ten-mib.bin`, { token: auditor })).status,
      403,
    );
    const other = (
      await b365(['token', 'create', '--role', 'machine', '--machine', 'someone-else', '--json'], { env: server.env })
    ).json.token;
    t.equal((await api(server.url, 'GET', `/images/${image}/volumes/1/files/`, { token: other })).status, 403);
  });

  t.test('files get --tar streams what tar reads', async (t) => {
    const tarFile = path.join(directory, 'unicode.tar');
    const result = await execa(
      'sh',
      [
        '-c',
        `${process.execPath} ${CLI_MAIN} files get ${image} /ünïcødé /link-relative --volume 1 --tar > '${tarFile}'`,
      ],
      { env: { ...process.env, ...server.env } },
    );
    t.equal(result.exitCode, 0);
    const listing = await run('tar', ['-tvf', tarFile]);
    t.match(listing, /ünïcødé\/naïve café 日本語\.txt/);
    t.match(listing, /link-relative -> ünïcødé\/naïve café 日本語\.txt/);
  });

  t.test('bad paths and bad bytes give clear errors', async (t) => {
    const out = await tempDir(t, 'b365-bad-');
    const traversal = await b365(['files', 'get', image, '../../etc', '--volume', '1', '--to', out], {
      env: server.env,
    });
    t.equal(traversal.exitCode, 2);
    t.match(traversal.stderr, /contains "\.\."/);
    const nul = await b365(['files', 'ls', image, '/a\u0001b', '--volume', '1'], { env: server.env });
    t.equal(nul.exitCode, 4, 'an odd but harmless name is simply not found');
    // A symlink planted in the target where the image has a directory is replaced, never followed.
    const outside = await tempDir(t, 'b365-outside-');
    await fs.symlink(outside, path.join(out, 'many'));
    const planted = await b365(
      ['files', 'get', image, '/many/d000', '--volume', '1', '--to', out, '--overwrite', 'always'],
      { env: server.env },
    );
    t.equal(planted.exitCode, 0, planted.stderr);
    t.same(await fs.readdir(outside), [], 'nothing was written through the planted symlink');
    const missing = await b365(['files', 'ls', image, '/no/such/dir', '--volume', '1'], { env: server.env });
    t.equal(missing.exitCode, 4);
    t.match(missing.stderr, /\/no/);
  });

  t.test('NBD export: qemu-img reads the volume exactly', async (t) => {
    const nbd = execa(
      process.execPath,
      [CLI_MAIN, 'nbd', image, '--volume', '1', '--listen', '127.0.0.1:0', '--json'],
      { env: { ...process.env, ...server.env }, buffer: false, reject: false },
    );
    t.teardown(() => {
      nbd.kill('SIGTERM');
    });
    const url = await new Promise<string>((resolve, reject) => {
      let text = '';
      nbd.stdout!.on('data', (data: Buffer) => {
        text += data.toString();
        const match = /"url":"([^"]+)"/.exec(text);
        if (match) resolve(match[1]!);
      });
      void nbd.then(() => reject(new Error(`nbd exited: ${text}`)));
    });
    const out = path.join(directory, 'nbd.raw');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', url, out]);
    const manifest = (await api(server.url, 'GET', `/images/${image}/manifest`, { token: server.adminToken })).body;
    const volume = manifest.disks[0].volumes.find((candidate: { id: string }) => candidate.id === 'p1');
    t.equal(
      (await execa('b3sum', ['--no-names', out])).stdout,
      volume.contentDigest,
      'BLAKE3 of what qemu-img read equals the content digest',
    );
  });
});

t.test('hostile names and corrupt directory blocks are named, not a crash', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const volume = await makeImageFile(path.join(directory, 'vol.img'), 64 * MiB);
  await run('mkfs.ext4', ['-q', '-b', '4096', '-O', '^metadata_csum,^has_journal', volume]);
  const loop = await attachLoop(t, volume);
  const mounted = await mount(t, loop.device);
  await fs.mkdir(path.join(mounted.path, 'broken'));
  for (let index = 0; index < 50; index++) await fs.writeFile(path.join(mounted.path, 'broken', `entry-${index}`), 'x');
  await fs.mkdir(path.join(mounted.path, 'hostile'));
  await fs.writeFile(path.join(mounted.path, 'hostile', 'PATCHME-PATCHME'), 'hostile\n');
  await fs.writeFile(path.join(mounted.path, 'hostile', 'fine.txt'), 'fine\n');
  await mounted.unmount();
  await loop.detach();
  // An image may be hostile: give a directory entry a name with slashes (same length).
  const raw = await fs.readFile(volume);
  const at = raw.indexOf(Buffer.from('PATCHME-PATCHME'));
  t.ok(at > 0, 'found the name to patch');
  Buffer.from('../../escape.tx').copy(raw, at);
  await fs.writeFile(volume, raw);
  const blocks = (await run('debugfs', ['-R', 'blocks /broken', volume])).trim().split(/\s+/).map(Number);
  const handle = await fs.open(volume, 'r+');
  await handle.write(Buffer.alloc(64, 0xff), 0, 64, blocks[0]! * 4096 + 12);
  await handle.close();
  t.equal((await b365(['image', volume, '--machine', 'broken-pc'], { env: server.env })).exitCode, 0);
  const out = await tempDir(t, 'b365-hostile-');
  const hostile = await b365(
    ['files', 'get', 'broken-pc@latest', '/', '--to', path.join(out, 'inner', 'target'), '--json'],
    { env: server.env },
  );
  t.equal(hostile.exitCode, 3, 'a directory with a hostile name is reported as unreadable');
  t.match(hostile.stderr, /\/hostile.*name contains "\/"/, 'naming the directory and why');
  t.same(await fs.readdir(out), ['inner'], 'nothing escaped the target');
  t.ok(
    (await fs.readdir(path.join(out, 'inner', 'target'))).includes('broken'),
    'the rest of the volume was extracted',
  );
  const listing = await b365(['files', 'ls', 'broken-pc@latest', '/broken'], { env: server.env });
  t.equal(listing.exitCode, 3);
  t.match(listing.stderr, /\/broken/, 'the error names the path');
  t.notMatch(listing.stderr, /TypeError|RangeError|internal error/);
});
