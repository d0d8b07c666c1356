// One process at a time in a repository directory: a second opener (in this process,
// another process, or a second `b365 server`) is refused with who holds it, and a holder
// killed with SIGKILL leaves nothing behind that blocks the next one.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import t from 'tap';
import { LocalRepository } from '../../server/local-repository.js';
import { RepositoryInUseError, lockRepository } from '../../server/repository-lock.js';
import { ExitCode } from '../../src/core/errors.js';
import { b365 } from '../helpers/cli.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const LOCK_MODULE = fileURLToPath(new URL('../../server/repository-lock.js', import.meta.url));

t.test('a second lock is refused, naming the holder, until the first is released', async (t) => {
  const repo = path.join(await tempDir(t), 'repo');
  const first = lockRepository(repo, 'b365 image', { create: true });
  const refusal = (() => {
    try {
      lockRepository(repo, 'b365 restore');
      return null;
    } catch (error) {
      return error;
    }
  })();
  t.type(refusal, RepositoryInUseError);
  t.equal((refusal as RepositoryInUseError).exitCode, ExitCode.conflict);
  t.equal(
    (refusal as Error).message,
    `repository ${repo} is in use by b365 image (pid ${process.pid} on host ${os.hostname()})`,
  );
  first.release();
  t.doesNotThrow(() => lockRepository(repo, 'b365 restore').release(), 'taken again once released');
});

t.test('the in-process repository holds the lock from open to close', async (t) => {
  const repo = path.join(await tempDir(t), 'repo');
  const opened = await LocalRepository.open(repo, { command: 'b365 image', create: true });
  await t.rejects(LocalRepository.open(repo, { command: 'b365 restore', create: false }), {
    code: 'repository_in_use',
    message: /is in use by b365 image/,
  });
  await opened.close();
  const again = await LocalRepository.open(repo, { command: 'b365 restore', create: false });
  await again.close();
});

t.test('a holder killed with SIGKILL does not block the next one', async (t) => {
  const repo = path.join(await tempDir(t), 'repo');
  const script = `import { lockRepository } from ${JSON.stringify(LOCK_MODULE)};
lockRepository(process.argv[1], 'b365 image', { create: true });
process.stdout.write('locked\\n');
setInterval(() => {}, 1000);`;
  const holder = execa(process.execPath, ['--input-type=module', '-e', script, repo], { reject: false, buffer: false });
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  t.throws(() => lockRepository(repo, 'b365 restore'), {
    message: `repository ${repo} is in use by b365 image (pid ${holder.pid} on host ${os.hostname()})`,
  });
  holder.kill('SIGKILL');
  await holder;
  t.doesNotThrow(() => lockRepository(repo, 'b365 restore').release(), 'the kernel dropped the dead holder’s lock');
});

t.test('b365 server and an offline reindex refuse a directory a server holds', async (t) => {
  const server = await startServer(t);
  const second = await b365(['server', '--repo', server.repo, '--listen', '127.0.0.1:0', '--insecure-http'], {
    timeout: 30_000,
  });
  t.equal(second.exitCode, ExitCode.conflict, second.stderr);
  t.equal(
    second.stderr,
    `b365: repository ${server.repo} is in use by b365 server (pid ${server.process.pid} on host ${os.hostname()})\n`,
  );
  const reindex = await b365(['server', 'reindex', '--repo', server.repo]);
  t.equal(reindex.exitCode, ExitCode.conflict, 'an offline reindex waits for the server to stop');
  t.match(reindex.stderr, /is in use by b365 server/);
});
