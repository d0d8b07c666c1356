// The repository is private to the server's user whatever the umask (directories 0700,
// files 0600, loose older repositories tightened at start), and the first admin token
// goes to a log only as the name of the file that holds it.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import t from 'tap';
import { adminTokenNotice } from '../../src/cli/commands/server.js';
import { b365 } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { printedFingerprint, serverNodeArgs, serverListening } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

interface Started {
  child: ResultPromise;
  url: string;
  stdout(): string;
  stop(): Promise<void>;
}

/** `b365 server` with stdout piped (as under systemd) and a umask that would leave everything world-readable. */
async function startWithUmask0(t: { teardown(fn: () => unknown): void }, repo: string): Promise<Started> {
  const command = [process.execPath, ...serverNodeArgs(repo, '127.0.0.1:0')];
  const child = execa('sh', ['-c', 'umask 000 && exec "$@"', 'sh', ...command], {
    reject: false,
    buffer: false,
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const { url, output } = await serverListening(child);
  const started: Started = {
    child,
    url,
    stdout: output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await child;
      }
    },
  };
  t.teardown(() => started.stop());
  return started;
}

async function modeOf(file: string): Promise<string> {
  return ((await fs.stat(file)).mode & 0o777).toString(8).padStart(4, '0');
}

/** Every directory and file below `root` with a mode other than the private one. */
async function looseEntries(root: string): Promise<string[]> {
  const loose: string[] = [];
  async function walk(directory: string): Promise<void> {
    for (const entry of await fs.readdir(directory, { withFileTypes: true })) {
      const full = path.join(directory, entry.name);
      const mode = await modeOf(full);
      if (entry.isDirectory()) {
        if (mode !== '0700') loose.push(`${path.relative(root, full)}/ ${mode}`);
        await walk(full);
      } else if (mode !== '0600') loose.push(`${path.relative(root, full)} ${mode}`);
    }
  }
  await walk(root);
  return loose;
}

t.test('a repository is private, and the first admin token stays out of logs', async (t) => {
  const base = await tempDir(t, 'b365-private-');
  const repo = path.join(base, 'repo');
  const server = await startWithUmask0(t, repo);
  const token = (await fs.readFile(path.join(repo, 'admin.token'), 'utf8')).trim();
  const tokenFile = path.join(path.resolve(repo), 'admin.token');

  t.notMatch(server.stdout(), token, 'the admin token is not written to a stdout that is not a terminal');
  t.match(server.stdout(), `admin token written to ${tokenFile} (mode 0600)`, 'stdout names the file that holds it');
  t.match(server.stdout(), `listening on ${server.url}`);

  t.equal(await modeOf(repo), '0700', 'repository root');
  t.equal(await modeOf(path.join(repo, 'tmp')), '0700', 'tmp/');
  for (const file of [
    'catalog.sqlite',
    'catalog.sqlite-wal',
    'catalog.sqlite-shm',
    'admin.token',
    'keys/signing.pem',
    'keys/tls.key',
    'keys/tls.crt',
  ]) {
    t.equal(await modeOf(path.join(repo, file)), '0600', file);
  }

  const source = path.join(base, 'disk.img');
  await writeLargeDistinctFile(source, 3 << 20, 5);
  const env = {
    B365_SERVER: server.url,
    B365_FINGERPRINT: printedFingerprint(server.stdout()) ?? 'none printed',
    B365_TOKEN: token,
    B365_STATE_DIR: path.join(base, 'client-state'),
  };
  const image = await b365(['image', source, '--machine', 'private', '--json'], { env });
  t.equal(image.exitCode, 0, image.stderr);
  const verify = await b365(['verify', image.json.image, '--level', 'content'], { env });
  t.equal(verify.exitCode, 0, verify.stderr);
  t.same(
    await looseEntries(repo),
    [],
    'after an upload and a verification every directory is 0700 and every file 0600',
  );
  await server.stop();

  // A repository made loose by an older version (or by hand) is tightened at start.
  await fs.chmod(repo, 0o755);
  await fs.chmod(path.join(repo, 'tmp'), 0o755);
  for (const file of ['catalog.sqlite', 'catalog.sqlite-wal', 'catalog.sqlite-shm'])
    await fs.chmod(path.join(repo, file), 0o644).catch(() => undefined);
  const again = await startWithUmask0(t, repo);
  t.notMatch(again.stdout(), /admin token/, 'a later start says nothing about the token');
  t.equal(await modeOf(repo), '0700', 'root tightened');
  t.equal(await modeOf(path.join(repo, 'tmp')), '0700', 'tmp/ tightened');
  for (const file of ['catalog.sqlite', 'catalog.sqlite-wal', 'catalog.sqlite-shm'])
    t.equal(await modeOf(path.join(repo, file)), '0600', `${file} tightened`);
  await again.stop();
});

t.test('on a terminal the first admin token is shown', async (t) => {
  t.match(adminTokenNotice('b365_secret', '/srv/repo/admin.token', true), /b365_secret/);
  t.notMatch(adminTokenNotice('b365_secret', '/srv/repo/admin.token', false), /b365_secret/);
});
