// The rescue ISO, unattended, refuses a server whose certificate is not the pinned one:
// a valid restore code on the kernel line never reaches it (the server logs every
// request it gets), the refusal is one B365-RESULT line on the serial console naming both
// fingerprints, and the target disk is never written. Refused codes (expired, revoked,
// unknown) are checked on this host in test/rescue/unattended.test.ts.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { b3sum } from '../helpers/b3sum.js';
import { b365 } from '../helpers/cli.js';
import { writeLargeDistinctFile } from '../helpers/content.js';
import { parseResultLine } from '../helpers/rescue.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { ensureIso, extractBootFiles, liveAppend, serialLogPath, stage } from './helpers/artifacts.js';
import { GUEST_SERVER_URL, QemuGuest } from './helpers/qemu.js';

const MINUTE = 60_000;
const MiB = 1 << 20;

if (process.env.B365_E2E !== '1') {
  t.plan(0, 'end-to-end tests run with `make e2e` (B365_E2E=1)');
} else {
  t.test('a server with another certificate never gets the code; the target is untouched', async (t) => {
    const directory = await tempDir(t, 'b365-e2e-');
    const iso = await stage(t, 'rescue ISO', ensureIso);
    const boot = await extractBootFiles(iso, directory);
    const server = await startServer(t, { tls: true, env: { B365_LOG_LEVEL: 'debug' } });
    const serverLog = () => fs.readFile(path.join(server.repo, '..', 'server.log'), 'utf8');
    const source = path.join(directory, 'source.img');
    await writeLargeDistinctFile(source, 16 * MiB, 3);
    const captured = await b365(['image', source, '--machine', 'e2e-pinned', '--json'], { env: server.env });
    t.equal(captured.exitCode, 0, captured.stderr);
    // A valid code: had it been sent, the restore would have gone ahead.
    const code = await b365(['restore-code', 'create', '--machine', 'e2e-pinned', '--json'], { env: server.env });
    t.equal(code.exitCode, 0, code.stderr);
    const fingerprint = server.fingerprint!;
    const wrong = fingerprint.replace(/^../, fingerprint.startsWith('00') ? '11' : '00');

    // A target full of known bytes, so any write would show.
    const target = path.join(directory, 'target.img');
    await writeLargeDistinctFile(target, 64 * MiB, 9);
    const before = await b3sum(target);
    const modified = (await fs.stat(target)).mtimeMs;

    const rescue = await QemuGuest.start(t, {
      serialLog: await serialLogPath('wrong-fingerprint'),
      kernel: {
        ...boot,
        append: liveAppend({
          'b365.server': GUEST_SERVER_URL,
          'b365.fingerprint': wrong,
          'b365.code': code.json.code,
          'b365.target': '/dev/vda',
          'b365.action': 'restore',
          'b365.after': 'poweroff',
          'b365.after-failure': 'poweroff',
        }),
      },
      cdrom: iso,
      disks: [{ file: target }],
      hostPort: Number(new URL(server.url).port),
    });
    const line = await stage(t, 'boot and refusal', () => rescue.waitForResult(20 * MINUTE));
    const result = parseResultLine(line);
    t.equal(result.status, 'failed', line);
    t.match(result.message, fingerprint, "the refusal names the server's fingerprint");
    t.match(result.message, wrong, 'and the pinned one');
    const serial = await rescue.serial();
    t.match(
      serial,
      new RegExp(`B365: the server's certificate must have SHA-256 fingerprint ${wrong}`),
      'the pin is said on the console before connecting',
    );
    t.match(serial, /B365: REFUSED the server: .*the restore code was not sent/, 'and the refusal after');
    t.equal(result.code, 'untrusted_server');
    t.notMatch(
      serial,
      /restore code accepted|B365: target /,
      'the run stopped before the code was accepted or a disk chosen',
    );
    t.notMatch(await serverLog(), /restore-codes\/exchange/, 'no request carrying the code reached the server');
    await stage(t, 'guest powers off', () => rescue.waitForExit(5 * MINUTE));
    t.equal(await b3sum(target), before, 'the target disk is byte for byte unchanged');
    t.equal((await fs.stat(target)).mtimeMs, modified, 'and was never written');
  });
}
