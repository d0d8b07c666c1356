// SIGTERM and SIGINT end a client stuck on a stalled server within seconds, and keep what
// a later run needs: an interrupted upload resumes and commits, an interrupted restore
// says the disk is partially written and how to write it whole.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365, CLI_MAIN } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { startServer } from '../helpers/server.js';
import { startStallProxy } from '../helpers/stall-proxy.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;
/** docs/cli.md: every command ends within 10 s of SIGINT or SIGTERM. */
const STOP_WITHIN_MS = 10_000;

/** Send `signal` and measure how long the process takes to end; SIGKILL it if it overstays. */
async function stopWith(
  child: ResultPromise,
  signal: NodeJS.Signals,
): Promise<{ elapsedMs: number; exitCode: number | undefined; stderr: string; stdout: string }> {
  const started = Date.now();
  child.kill(signal);
  const overstay = setTimeout(() => child.kill('SIGKILL'), STOP_WITHIN_MS + 5_000);
  const result = await child;
  clearTimeout(overstay);
  return {
    elapsedMs: Date.now() - started,
    exitCode: result.exitCode,
    stderr: String(result.stderr),
    stdout: String(result.stdout),
  };
}

t.test('a stalled server: the client stops on a signal, and the next run resumes', async (t) => {
  const server = await startServer(t);
  const directory = await tempDir(t);
  const source = path.join(directory, 'disk.img');
  await writeLargeDistinctFile(source, 96 * MiB, 31);

  const proxy = await startStallProxy(t, server.url, { stallAfterBytes: 12 * MiB });
  const env = { ...server.env, B365_SERVER: proxy.url, B365_LOG_LEVEL: 'warn' };
  const image = execa(process.execPath, [CLI_MAIN, 'image', source, '--machine', 'stalled'], { env, reject: false });
  await proxy.stalled;
  // Long enough for every request of the client to be waiting on the dead path.
  await sleep(1500);
  const stopped = await stopWith(image, 'SIGTERM');
  t.ok(stopped.elapsedMs < STOP_WITHIN_MS, `b365 image ended ${stopped.elapsedMs} ms after SIGTERM`);
  t.equal(stopped.exitCode, 143, 'exit code 143 after SIGTERM (docs/cli.md)');
  t.match(
    stopped.stderr,
    /interrupted: .*upload session \S+ is kept and the upload resumes on the next run/,
    stopped.stderr,
  );
  t.notMatch(stopped.stderr, /internal error| {4}at /, 'no stack trace');

  proxy.resume();
  const rerun = await b365(['image', source, '--machine', 'stalled', '--json'], { env });
  t.equal(rerun.exitCode, 0, rerun.stderr);
  t.equal(rerun.json.resumed, true, 'the next run resumed the interrupted upload session');
  t.ok(
    rerun.json.chunksUploaded < rerun.json.chunksTotal,
    `chunks already sent were not sent again (${rerun.json.chunksUploaded} of ${rerun.json.chunksTotal} uploaded)`,
  );

  t.test('a restore stuck on a stalled server stops on SIGINT and says the target is partially written', async (t) => {
    const slow = await startStallProxy(t, server.url, { stallAfterBytes: 24 * MiB });
    const target = path.join(directory, 'restored.img');
    const restore = execa(process.execPath, [CLI_MAIN, 'restore', rerun.json.image, '--to', target], {
      env: { ...env, B365_SERVER: slow.url },
      reject: false,
    });
    await slow.stalled;
    await sleep(1500);
    const interrupted = await stopWith(restore, 'SIGINT');
    t.ok(interrupted.elapsedMs < STOP_WITHIN_MS, `b365 restore ended ${interrupted.elapsedMs} ms after SIGINT`);
    t.equal(interrupted.exitCode, 130, 'exit code 130 after SIGINT');
    t.match(
      interrupted.stderr,
      new RegExp(
        `interrupted: ${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is partially written .*run the same restore again`,
      ),
      interrupted.stderr,
    );

    const again = await b365(['restore', rerun.json.image, '--to', target, '--yes'], { env: server.env });
    t.equal(again.exitCode, 0, again.stderr);
    t.equal(await b3sum(target), await b3sum(source), 'the restore run again wrote the disk whole');

    // At the typed confirmation the terminal is raw: Ctrl-C arrives as a keystroke, not a signal.
    const before = await b3sum(target);
    const terminal = execa(
      'script',
      ['-qec', `${process.execPath} ${CLI_MAIN} restore ${rerun.json.image} --to ${target}`, '/dev/null'],
      { env: server.env, stdin: 'pipe', reject: false, timeout: 60_000 },
    );
    let shown = '';
    await new Promise<void>((resolve) =>
      terminal.stdout!.on('data', (data: Buffer) => {
        shown += data.toString();
        if (shown.includes('Type the device name')) resolve();
      }),
    );
    await sleep(300);
    const started = Date.now();
    terminal.stdin!.write('\x03');
    const atPrompt = await terminal;
    t.ok(
      Date.now() - started < STOP_WITHIN_MS,
      `Ctrl-C at the confirmation ended the restore in ${Date.now() - started} ms`,
    );
    t.equal(atPrompt.exitCode, 130, shown);
    t.match(String(atPrompt.stdout), /interrupted at the confirmation; nothing was written/);
    t.equal(await b3sum(target), before, 'not a byte written');
  });
});
