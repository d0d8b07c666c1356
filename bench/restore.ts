// Benchmark of bringing the generated 4 GiB disk back: `b365 restore` of its full image
// next to `restic dump` of the raw-disk snapshot and `partclone.restore` of the
// partition images, in the same run; then content verification on the server.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { attachLoop, makeImageFile, sfdisk } from '../test/helpers/disk.js';
import { type BenchContext, type DiskArtifacts, measureB365, prepareArtifacts, target } from './disk.js';
import { type Measurement, bestOf, measure, measurementCells, measurementHeader, renderTable } from './measure.js';
import { storeObjects } from './store-stats.js';

interface RestoreReportJson {
  verified: boolean;
  bytesWritten: number;
  bytesFetched: number;
  chunksFetched: number;
}

interface VerifyJson {
  report: {
    summary: {
      ok: number;
      failed: number;
      chunksVerified: number;
      chunksCorrupt: number;
      chunksMissing: number;
      bytesRead: number;
    };
  };
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(0);

export async function benchRestore(
  context: BenchContext,
  prepared?: DiskArtifacts,
): Promise<{ rows: Measurement[]; checks: string[] }> {
  const { scope, work, policy } = context;
  const artifacts = prepared ?? (await prepareArtifacts(context));
  const { server, fullImage } = artifacts.b365;
  const diskSize = (await fs.stat(artifacts.disk.before)).size;

  const restoreTo = (round: number, name: string) => path.join(work, `restore-${name}-${round}.img`);
  const restoreArgs = (file: string) => `restore ${fullImage} --to ${file} --yes --json`;
  const b365Restore = await bestOf(
    policy,
    async (round) => {
      const file = restoreTo(round, 'b365');
      const row = await measureB365('b365 restore', server, restoreArgs(file));
      const report = JSON.parse(row.stdout) as RestoreReportJson;
      await fs.rm(file, { force: true });
      if (!report.verified) throw new Error(`b365 restore of ${fullImage} did not verify`);
      return { ...row, bytes: report.bytesWritten, report };
    },
    { ownCpu: (row) => row.cpuSeconds + row.serverCpuSeconds },
  );

  // restic writes the whole raw disk, zeros included; `sync FILE` makes it wait for the
  // data to reach the disk, as b365 restore does with fsync.
  const resticDump = await bestOf(policy, async (round) => {
    const file = restoreTo(round, 'restic');
    const row = await measure(
      'restic dump',
      `restic --no-cache dump ${artifacts.restic.fullSnapshot} disk.img > ${file} && sync ${file}`,
      { env: artifacts.restic.env },
    );
    const size = (await fs.stat(file)).size;
    await fs.rm(file, { force: true });
    if (size !== diskSize) throw new Error(`restic dump wrote ${size} bytes, expected ${diskSize}`);
    return { ...row, bytes: size };
  });

  // partclone.restore writes into the partitions of a disk that already has the table.
  const partcloneRestore = await bestOf(policy, async (round) => {
    const file = restoreTo(round, 'partclone');
    await makeImageFile(file, diskSize);
    await sfdisk(file, artifacts.partclone.table);
    const loop = await attachLoop(scope, file);
    const log = path.join(work, 'partclone-restore.log');
    try {
      const row = await measure(
        'partclone.restore (lz4 -dc | ext4, FAT)',
        `lz4 -dc ${artifacts.partclone.ext} | partclone.restore -s - -o ${loop.partition(3)} -L ${log} >/dev/null 2>&1 && partclone.restore -s ${artifacts.partclone.vfat} -o ${loop.partition(1)} -L ${log} >/dev/null 2>&1 && sync ${loop.partition(3)} ${loop.partition(1)}`,
      );
      const check = await execa('e2fsck', ['-n', loop.partition(3)], { reject: false });
      if (check.exitCode !== 0)
        throw new Error(`the partition partclone.restore wrote does not pass e2fsck: ${check.stdout.slice(-500)}`);
      return row;
    } finally {
      await loop.detach();
      await fs.rm(file, { force: true });
    }
  });

  // Content verification: every distinct chunk read, decompressed and re-hashed on the server.
  const objects = await storeObjects(server.repo);
  const verify = await bestOf(
    policy,
    async () => {
      const row = await measureB365(
        'b365 verify --level content (server)',
        server,
        'verify --all --level content --json',
      );
      const summary = (JSON.parse(row.stdout) as VerifyJson).report.summary;
      if (summary.failed || summary.chunksCorrupt || summary.chunksMissing)
        throw new Error(`verification failed: ${JSON.stringify(summary)}`);
      return { ...row, bytes: objects.rawBytes, summary };
    },
    { ownCpu: (row) => row.cpuSeconds + row.serverCpuSeconds },
  );
  const perCoreRaw = objects.rawBytes / 1e6 / verify.serverCpuSeconds;
  const perCoreStored = objects.storedBytes / 1e6 / verify.serverCpuSeconds;

  const rows: Measurement[] = [b365Restore, resticDump, partcloneRestore, verify];
  const header = measurementHeader();
  const lines = [
    [
      b365Restore,
      `wrote ${mb(b365Restore.report.bytesWritten)} MB, fetched ${b365Restore.report.chunksFetched} chunks; then reads every volume back and runs fsck`,
    ],
    [resticDump, `wrote the whole ${mb(diskSize)} MB raw disk`],
    [partcloneRestore, 'ext4 and FAT partitions onto a loop device with the table in place'],
    [
      verify,
      `${objects.objects} objects, ${mb(objects.rawBytes)} MB of chunk data (${mb(objects.storedBytes)} MB stored): ${perCoreRaw.toFixed(0)} MB/s per server core (${perCoreStored.toFixed(0)} MB/s of stored bytes)`,
    ],
  ] as const;
  const tableLines = lines.map(([row, what]) => measurementCells(row, what));
  const checks = [
    target(
      'restore wall vs restic dump',
      b365Restore.wallSeconds / resticDump.wallSeconds,
      0.5,
      `${(b365Restore.wallSeconds / resticDump.wallSeconds).toFixed(2)}x`,
    ),
    target(
      'restore wall vs partclone.restore',
      b365Restore.wallSeconds / partcloneRestore.wallSeconds,
      0.5,
      `${(b365Restore.wallSeconds / partcloneRestore.wallSeconds).toFixed(2)}x`,
    ),
    target(
      'content verification, MB/s of chunk data per server core',
      perCoreRaw,
      500,
      `${perCoreRaw.toFixed(0)} MB/s (${(objects.rawBytes / 1e6 / verify.wallSeconds).toFixed(0)} MB/s wall)`,
      true,
    ),
    `restore CPU: client ${b365Restore.cpuSeconds.toFixed(1)} s + server ${b365Restore.serverCpuSeconds.toFixed(1)} s vs restic ${resticDump.cpuSeconds.toFixed(1)} s and partclone ${partcloneRestore.cpuSeconds.toFixed(1)} s; client peak RSS ${b365Restore.peakRssMiB.toFixed(0)} MiB`,
  ];
  process.stdout.write(
    [
      '',
      '## Restore of the 4 GiB disk, and content verification',
      renderTable(header, tableLines),
      ...checks.map((line) => `- ${line}`),
      '',
    ].join('\n'),
  );
  return { rows, checks };
}
