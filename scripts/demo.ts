// `make demo`: the main job end to end on a local repository directory. Starts a
// server, builds a sample disk with real files, images it, changes a few files, images
// it again, restores the second image and proves the restore, then stops the server.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { CaptureReport } from '../imaging/capture/image.js';
import type { RestoreReport } from '../imaging/restore/image.js';
import { formatBytes, formatDuration } from '../src/core/units.js';
import { b365 } from '../test/helpers/cli.js';
import { attachLoop, makeImageFile, mount, run, sfdisk } from '../test/helpers/disk.js';
import { startServer } from '../test/helpers/server.js';

const cleanups: (() => unknown)[] = [];
const scope = { teardown: (fn: () => unknown) => cleanups.push(fn) };

function step(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

async function cli<Report>(args: string[], env: Record<string, string>): Promise<Report> {
  const result = await b365([...args, '--json'], { env });
  if (result.exitCode !== 0) throw new Error(`b365 ${args.join(' ')} failed (${result.exitCode}): ${result.stderr}`);
  return result.json as Report;
}

/** SHA-256 over every file's path, mode and content: one value for a whole tree. */
async function treeDigest(root: string): Promise<{ digest: string; files: number }> {
  const hash = createHash('sha256');
  let files = 0;
  async function walk(directory: string): Promise<void> {
    const entries = (await fs.readdir(directory, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const full = path.join(directory, entry.name);
      if (entry.name === 'lost+found') continue;
      const stats = await fs.lstat(full);
      hash.update(`${path.relative(root, full)}\0${stats.mode}\0`);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isSymbolicLink()) hash.update(await fs.readlink(full));
      else if (entry.isFile()) {
        hash.update(await fs.readFile(full));
        files++;
      }
    }
  }
  await walk(root);
  return { digest: hash.digest('hex'), files };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('the demo builds a real disk with loop devices and mount: run it as root');
  const started = Date.now();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'b365-demo-'));
  scope.teardown(() => fs.rm(work, { recursive: true, force: true }));

  step('starting a repository server on a temporary local directory (HTTPS, self-signed certificate)');
  const server = await startServer(scope, { repo: path.join(work, 'repo'), tls: true });
  process.stdout.write(
    `server ${server.url}, repository ${server.repo}\ncertificate SHA-256 fingerprint ${server.fingerprint}: every client below pins it (B365_FINGERPRINT)\n`,
  );
  const impostor = await b365(['images'], { env: { ...server.env, B365_FINGERPRINT: '00'.repeat(32) } });
  process.stdout.write(
    `a client pinning another fingerprint is refused before it sends anything (exit ${impostor.exitCode}):\n  ${impostor.stderr.trim().slice(0, 300)}\n`,
  );

  step('building a sample disk: GPT, one ext4 partition, real files from /usr/share');
  const disk = path.join(work, 'sample-disk.img');
  await makeImageFile(disk, 768 << 20);
  await sfdisk(disk, 'label: gpt\nsize=700MiB, type=linux, name=data\n');
  const loop = await attachLoop(scope, disk);
  await run('mkfs.ext4', ['-q', '-L', 'demo-data', loop.partition(1)]);
  const source = await mount(scope, loop.partition(1));
  for (const directory of ['/usr/share/doc', '/usr/share/man']) {
    await execa('cp', ['-a', directory, path.join(source.path, path.basename(directory))], { reject: false });
  }
  await source.unmount();
  await loop.detach();

  step('first image');
  const first = await cli<CaptureReport>(['image', disk, '--machine', 'demo-pc'], server.env);
  process.stdout.write(
    `${first.image}: read ${formatBytes(first.bytesRead)}, uploaded ${formatBytes(first.bytesUploaded)} in ${formatDuration(first.durationMs)}\n`,
  );

  step('changing a few files');
  const loop2 = await attachLoop(scope, disk);
  const changed = await mount(scope, loop2.partition(1));
  await fs.appendFile(
    path.join(changed.path, 'doc', 'CHANGES-today.txt'),
    `a day of work, ${new Date().toISOString()}\n`.repeat(2000),
  );
  await fs.writeFile(path.join(changed.path, 'new-report.bin'), Buffer.alloc(3 << 20, 7));
  await fs.rm(path.join(changed.path, 'man', 'man1'), { recursive: true, force: true });
  const sourceTree = await treeDigest(changed.path);
  await changed.unmount();
  await loop2.detach();

  step('second image (incremental: only changes are sent)');
  const second = await cli<CaptureReport>(['image', disk, '--machine', 'demo-pc'], server.env);
  process.stdout.write(
    `${second.image}: read ${formatBytes(second.bytesRead)}, uploaded ${formatBytes(second.bytesUploaded)} (${second.chunksUploaded} chunks new, ${second.chunksReused} reused) in ${formatDuration(second.durationMs)}\n`,
  );

  step('restoring the second image onto a new disk file');
  const restoredDisk = path.join(work, 'restored-disk.img');
  const restore = await cli<RestoreReport>(['restore', second.image, '--to', restoredDisk], server.env);
  for (const check of restore.checks) process.stdout.write(`${check.ok ? 'ok  ' : 'FAIL'} ${check.check}\n`);
  const loop3 = await attachLoop(scope, restoredDisk, { readOnly: true });
  const fsck = await execa('e2fsck', ['-fn', loop3.partition(1)], { reject: false });
  const restored = await mount(scope, loop3.partition(1), { options: 'ro' });
  const restoredTree = await treeDigest(restored.path);
  await restored.unmount();
  await loop3.detach();

  const stored = Number((await execa('du', ['-sb', path.join(server.repo, 'chunks')])).stdout.split(/\s+/)[0]);
  const logical = first.bytesUsed + second.bytesUsed;
  const verified = restore.verified && fsck.exitCode === 0 && restoredTree.digest === sourceTree.digest;
  step('summary');
  process.stdout.write(
    `${[
      `bytes read         ${formatBytes(first.bytesRead + second.bytesRead)} (two images)`,
      `bytes uploaded     ${formatBytes(first.bytesUploaded)} + ${formatBytes(second.bytesUploaded)}`,
      `repository holds   ${formatBytes(stored)} for ${formatBytes(logical)} of disk data: dedup and compression ratio ${(logical / stored).toFixed(2)}x`,
      `restore verified   ${verified ? 'yes' : 'NO'}: content digests (BLAKE3) ${restore.verified ? 'equal' : 'differ'}, e2fsck ${fsck.exitCode === 0 ? 'clean' : 'found problems'}, ${restoredTree.files} files ${restoredTree.digest === sourceTree.digest ? 'identical' : 'DIFFER'}`,
      `demo took          ${formatDuration(Date.now() - started)}`,
    ].join('\n')}\n`,
  );
  if (!verified) throw new Error('the restored disk does not match the source');
}

main()
  .catch((error: Error) => {
    process.stderr.write(`demo failed: ${error.message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  });
