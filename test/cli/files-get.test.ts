// `b365 files get` into a directory that already holds some of the paths: refused
// before anything is written unless --overwrite says what to do (never, if-changed,
// always); and its progress bar, on a terminal only, with the real totals.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { Prng } from '../helpers/content.js';
import { makeImageFile, MiB, run, writeTree } from '../helpers/disk.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const MTIME = new Date('2024-05-06T07:08:09Z');

/** An ext4 volume made by mkfs from a tree: 6 files (one with a second hard link), a symlink, a sparse file. */
async function buildVolume(directory: string): Promise<string> {
  const tree = path.join(directory, 'tree');
  const random = Buffer.alloc(3 * MiB);
  new Prng(11).fill(random);
  await writeTree(tree, {
    'docs/a.txt': 'alpha\n',
    'docs/b.txt': 'bravo\n',
    'docs/sub/c.txt': 'charlie\n',
    'big.bin': random,
  });
  await fs.link(path.join(tree, 'docs/a.txt'), path.join(tree, 'docs/hard.txt'));
  await fs.symlink('a.txt', path.join(tree, 'docs/link'));
  const sparse = await fs.open(path.join(tree, 'sparse.bin'), 'w');
  await sparse.write(Buffer.from('end\n'), 0, 4, 5 * MiB);
  await sparse.close();
  for (const file of ['docs/a.txt', 'docs/b.txt', 'docs/sub/c.txt', 'big.bin', 'sparse.bin'])
    await fs.utimes(path.join(tree, file), MTIME, MTIME);
  const volume = await makeImageFile(path.join(directory, 'volume.img'), 64 * MiB);
  await run('mkfs.ext4', ['-q', '-d', tree, volume]);
  return volume;
}

const inode = async (file: string) => (await fs.lstat(file)).ino;
/** A file's permission bits: the mark that tells a file left alone from one written again (inode numbers get reused). */
const modeOf = async (file: string) => (await fs.lstat(file)).mode & 0o7777;
const text = (file: string) => fs.readFile(file, 'utf8');

t.test('files get into a directory that already holds some of the paths', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const captured = await b365(['image', await buildVolume(directory), '--machine', 'files-host', '--json'], {
    env: server.env,
  });
  t.equal(captured.exitCode, 0, captured.stderr);
  const image = captured.json.image as string;
  const out = path.join(directory, 'out');
  const get = (...extra: string[]) => b365(['files', 'get', image, '/', '--to', out, ...extra], { env: server.env });

  const first = await get();
  t.equal(first.exitCode, 0, first.stderr);
  t.match(first.stdout, /^extracted 5 files, 3 directories, 1 symlink, 1 hard link \(/m, 'counts in the right plural');
  t.equal(first.stderr, '', 'no progress output when stderr is not a terminal');

  // The user changes one file and loses another.
  await fs.writeFile(path.join(out, 'docs/a.txt'), 'edited by the user, longer than before\n');
  await fs.rm(path.join(out, 'docs/b.txt'));

  t.test('without --overwrite: refused, nothing written, the conflicts named', async (t) => {
    const refused = await get();
    t.equal(refused.exitCode, 2);
    t.match(refused.stderr, /^b365: 6 paths to extract exist already under .*; nothing was written:$/m);
    t.match(refused.stderr, new RegExp(`^  ${out}/big\\.bin$`, 'm'));
    t.match(refused.stderr, new RegExp(`^  ${out}/docs/a\\.txt$`, 'm'));
    t.notMatch(refused.stderr, /docs\/b\.txt/, 'a missing path is no conflict');
    t.match(refused.stderr, /choose --overwrite never \(keep them\), if-changed .* or always/);
    t.notMatch(refused.stderr, /\n\s+at /, 'no stack trace');
    await t.rejects(fs.access(path.join(out, 'docs/b.txt')), 'the missing file was not written either');
    t.equal(await text(path.join(out, 'docs/a.txt')), 'edited by the user, longer than before\n');
    const json = await get('--json');
    t.equal(json.exitCode, 2);
    t.equal(json.json.error.conflicts, 6);
  });

  t.test('--overwrite never: existing paths kept, missing ones written', async (t) => {
    const kept = await get('--overwrite', 'never', '--json');
    t.equal(kept.exitCode, 0, kept.stderr);
    t.equal(
      await text(path.join(out, 'docs/a.txt')),
      'edited by the user, longer than before\n',
      'the edited file is kept',
    );
    t.equal(await text(path.join(out, 'docs/b.txt')), 'bravo\n', 'the lost file is back');
    t.equal(kept.json.kept, 6);
    t.equal(kept.json.files, 1);
    const human = await get('--overwrite', 'never');
    t.match(
      human.stdout,
      /^extracted 0 files, 0 directories \(0 B\)/m,
      'directories that were there are not counted as extracted',
    );
    t.match(human.stdout, /already there: 7 kept as they were/);
  });

  t.test('--overwrite if-changed: only what differs in size or mtime is rewritten', async (t) => {
    // c.txt: same size, other mtime. b.txt and big.bin: equal to the image's. Each marked
    // with a mode the image does not have: a file written again gets the image's mode back.
    await fs.utimes(
      path.join(out, 'docs/sub/c.txt'),
      new Date('2020-01-01T00:00:00Z'),
      new Date('2020-01-01T00:00:00Z'),
    );
    const imageMode = await modeOf(path.join(out, 'docs/b.txt'));
    for (const file of ['docs/b.txt', 'big.bin', 'docs/sub/c.txt']) await fs.chmod(path.join(out, file), 0o600);
    const changed = await get('--overwrite', 'if-changed', '--json');
    t.equal(changed.exitCode, 0, changed.stderr);
    t.equal(await text(path.join(out, 'docs/a.txt')), 'alpha\n', "the edited file is the image's again");
    t.equal(await text(path.join(out, 'docs/hard.txt')), 'alpha\n');
    t.equal(
      await inode(path.join(out, 'docs/a.txt')),
      await inode(path.join(out, 'docs/hard.txt')),
      'still one inode for both links',
    );
    t.equal(await modeOf(path.join(out, 'docs/sub/c.txt')), imageMode, 'a file with another mtime is rewritten');
    t.equal((await fs.stat(path.join(out, 'docs/sub/c.txt'))).mtime.toISOString(), MTIME.toISOString());
    t.equal(await modeOf(path.join(out, 'docs/b.txt')), 0o600, 'an equal file is left alone');
    t.equal(await modeOf(path.join(out, 'big.bin')), 0o600, 'an equal big file is not fetched again');
    // The edit went through a.txt into the inode hard.txt shares: both differ.
    t.equal(changed.json.replaced, 3, 'a.txt, hard.txt, c.txt');
    t.equal(changed.json.unchanged, 4, 'b.txt, big.bin, sparse.bin, the symlink');
  });

  t.test('--overwrite always: everything is written again', async (t) => {
    t.equal(await modeOf(path.join(out, 'docs/b.txt')), 0o600, 'still marked');
    const always = await get('--overwrite', 'always', '--json');
    t.equal(always.exitCode, 0, always.stderr);
    t.not(await modeOf(path.join(out, 'docs/b.txt')), 0o600, "written again, with the image's mode");
    t.equal(always.json.replaced, 7);
    const bad = await get('--overwrite', 'sometimes');
    t.equal(bad.exitCode, 2);
    t.match(bad.stderr, /--overwrite takes never, if-changed, always, got "sometimes"/);
  });

  t.test('on a terminal: a progress bar with the real totals', async (t) => {
    const fresh = path.join(directory, 'fresh');
    const command = `${process.execPath} ${CLI_MAIN} files get ${image} / --to ${fresh}`;
    const tty = await execa('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, ...server.env },
      reject: false,
    });
    t.equal(tty.exitCode, 0, String(tty.stdout));
    // A frame of the bar ends in a carriage return or in the ESC [1G that moves the cursor to column 1.
    const frames = String(tty.stdout).replaceAll('\u001b[1G', '\r').split('\r');
    const last = frames.filter((frame) => frame.includes('% |')).at(-1) ?? '';
    t.match(last, /100% \| 7 of 7 files \| 8\.0 MiB of 8\.0 MiB \|/, 'the bar ends at the totals the walk counted');
  });
});
