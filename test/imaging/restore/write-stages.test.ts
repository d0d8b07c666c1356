// The restore stages on their own, on a real image file: one volume written from a real
// server is a clean ext4 (e2fsck -fn) with its files, the volumes left out stay zeros,
// the table comes back as planned, and the read-back stage catches a damaged volume.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { prepareRestore } from '../../../imaging/restore/image.js';
import { verifyTable, verifyVolumes } from '../../../imaging/restore/read-back.js';
import { emptyReport, type RestoreRun } from '../../../imaging/restore/run.js';
import { clearOldTable, writeTable, writeVolumes } from '../../../imaging/restore/write-stages.js';
import { attachLoop, mount, sfdiskDump } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { BOOT, captureSmallGptDisk, ROOT } from './captured-disk.js';

t.test('restore stages', async (t) => {
  const directory = await tempDir(t);
  const captured = await captureSmallGptDisk(t, directory);
  const target = path.join(directory, 'target.img');
  const { plan, indexes } = await prepareRestore({ client: captured.client, reference: captured.reference, target });
  const root = plan.volumes.filter((planned) => planned.volume.partitionNumber === 2);
  t.equal(root.length, 1, 'the root partition is one volume');
  const onlyRoot = { ...plan, volumes: root };
  const handle = await fs.open(target, 'r+');
  const run: RestoreRun = {
    plan: onlyRoot,
    source: captured.client,
    indexes,
    handle,
    report: emptyReport(onlyRoot, target),
    gapWritten: new Map(),
  };
  try {
    await clearOldTable(run);
    await writeVolumes(run);
    await writeTable(run);
    await verifyVolumes(run);
    await verifyTable(run);
  } finally {
    await handle.close();
  }

  t.test('the volume written is a clean ext4 with its files', async (t) => {
    t.same(
      run.report.checks.map((check) => [check.check, check.ok]),
      [
        [`content digest of ${root[0]!.volume.id}`, true],
        ['partition table', true],
      ],
      'read back against its content digest, and the table as planned',
    );
    const loop = await attachLoop(t, target, { offset: ROOT.start, size: ROOT.size, readOnly: true });
    const fsck = await execa('e2fsck', ['-fn', loop.device], { reject: false });
    t.equal(fsck.exitCode, 0, fsck.exitCode === 0 ? 'e2fsck -fn reports it clean' : `e2fsck -fn: ${fsck.stdout}`);
    const mounted = await mount(t, loop.device, { options: 'ro' });
    t.equal(await fs.readFile(path.join(mounted.path, 'hello.txt'), 'utf8'), 'hello from root\n');
  });

  t.test('what the plan leaves out is not written; the table is the captured one', async (t) => {
    const bytes = await fs.readFile(target);
    t.ok(
      bytes.subarray(BOOT.start, BOOT.start + BOOT.size).every((byte) => byte === 0),
      'the boot partition holds only zeros',
    );
    const dump = (await sfdiskDump(target)).replace(/^device: .*$/m, '');
    const sourceDump = (await sfdiskDump(captured.source)).replace(/^device: .*$/m, '');
    t.equal(
      dump.replaceAll(/\S*target\.img/g, 'DISK'),
      sourceDump.replaceAll(/\S*source\.img/g, 'DISK'),
      'sfdisk --dump as the source',
    );
  });

  t.test('the read-back stage finds a damaged volume', async (t) => {
    const damaged = await fs.open(target, 'r+');
    try {
      await damaged.write(Buffer.alloc(4096, 0x5a), 0, 4096, ROOT.start + 2 * 1024 * 1024);
      const check: RestoreRun = { ...run, handle: damaged, report: emptyReport(onlyRoot, target) };
      await verifyVolumes(check);
      t.equal(check.report.checks.length, 1);
      t.equal(check.report.checks[0]!.ok, false, 'the content digest no longer matches');
      t.match(check.report.checks[0]!.detail, /^read back [0-9a-f]{64}, the image says [0-9a-f]{64}$/);
    } finally {
      await damaged.close();
    }
  });
});
