// An expired restore code in unattended mode: the rescue system says so in one
// B365-RESULT line on the serial console and never writes the target disk.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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
  t.test('an expired code fails clearly and leaves the target untouched', async (t) => {
    const directory = await tempDir(t, 'b365-e2e-');
    const iso = await stage(t, 'rescue ISO', ensureIso);
    const boot = await extractBootFiles(iso, directory);
    const server = await startServer(t);
    const source = path.join(directory, 'source.img');
    await writeLargeDistinctFile(source, 16 * MiB, 3);
    const captured = await b365(['image', source, '--machine', 'e2e-expired', '--json'], { env: server.env });
    t.equal(captured.exitCode, 0, captured.stderr);
    const code = await b365(['restore-code', 'create', '--machine', 'e2e-expired', '--ttl', '1s', '--json'], { env: server.env });
    t.equal(code.exitCode, 0, code.stderr);
    await sleep(1500);

    // A target full of known bytes, so any write would show.
    const target = path.join(directory, 'target.img');
    await writeLargeDistinctFile(target, 64 * MiB, 9);
    const before = await b3sum(target);
    const modified = (await fs.stat(target)).mtimeMs;

    const rescue = await QemuGuest.start(t, {
      serialLog: await serialLogPath('expired-code'),
      kernel: {
        ...boot,
        append: liveAppend({
          'b365.server': GUEST_SERVER_URL,
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
    t.equal(result.code, 'code_expired');
    t.match(result.message, /expired/);
    const serial = await rescue.serial();
    t.notMatch(serial, /B365: target /, 'the run stopped before choosing a disk');
    await stage(t, 'guest powers off', () => rescue.waitForExit(5 * MINUTE));
    t.equal(await b3sum(target), before, 'the target disk is byte for byte unchanged');
    t.equal((await fs.stat(target)).mtimeMs, modified, 'and was never written');
  });
}
