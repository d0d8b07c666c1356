// Benchmark of file-level restore: `b365 files get` of the whole tree of the generated
// disk's ext4 volume, next to what an admin does without it: mount a restored copy of
// the disk read-only and `cp -a` the tree. Both end with the copy synced to disk.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { attachLoop } from '../test/helpers/disk.js';
import { type BenchContext, type DiskArtifacts, measureB365, prepareArtifacts, target } from './disk.js';
import { type Measurement, bestOf, measure, renderTable } from './measure.js';

/** The generated disk's ext4 partition. */
const EXT4_PARTITION = 3;

interface TreeSummary {
  entries: number;
  bytes: number;
}

/** Entries and apparent bytes below `root`: what both copies must agree on. */
async function summarize(root: string): Promise<TreeSummary> {
  const entries = Number((await execa('sh', ['-c', `find ${root} -mindepth 1 | wc -l`])).stdout.trim());
  const bytes = Number((await execa('du', ['-s', '-b', '--apparent-size', root])).stdout.split('\t')[0]);
  return { entries, bytes };
}

export async function benchFiles(
  context: BenchContext,
  prepared?: DiskArtifacts,
): Promise<{ rows: Measurement[]; checks: string[] }> {
  const { scope, work, policy } = context;
  const artifacts = prepared ?? (await prepareArtifacts(context));
  const { server, fullImage } = artifacts.b365;
  const outputOf = (name: string, round: number) => path.join(work, `files-${name}-${round}`);

  // The restored copy of the disk is the disk the image was taken from: byte for byte
  // what `b365 restore` writes, without spending the restore's time here.
  const mountAndCopy = await bestOf(
    policy,
    async (round) => {
      const output = outputOf('cp', round);
      const mountPoint = path.join(work, `files-mnt-${round}`);
      await fs.mkdir(output, { recursive: true });
      await fs.mkdir(mountPoint, { recursive: true });
      const loop = await attachLoop(scope, artifacts.disk.before, { readOnly: true });
      try {
        const row = await measure(
          'mount a restored copy + cp -a',
          `mount -o ro ${loop.partition(EXT4_PARTITION)} ${mountPoint} && cp -a ${mountPoint}/. ${output}/ && umount ${mountPoint} && sync -f ${output}`,
        );
        return { ...row, output };
      } finally {
        await execa('umount', [mountPoint], { reject: false });
        await loop.detach();
      }
    },
    { discard: (row) => fs.rm(row.output, { recursive: true, force: true }) },
  );

  const filesGet = await bestOf(
    policy,
    async (round) => {
      const output = outputOf('b365', round);
      await fs.mkdir(output, { recursive: true });
      const row = await measureB365(
        'b365 files get / (whole ext4 tree)',
        server,
        `files get ${fullImage} / --volume ${EXT4_PARTITION} --to ${output} && sync -f ${output}`,
      );
      return { ...row, output };
    },
    {
      ownCpu: (row) => row.cpuSeconds + row.serverCpuSeconds,
      discard: (row) => fs.rm(row.output, { recursive: true, force: true }),
    },
  );

  // Both copies must hold the same tree, or the comparison means nothing.
  const copied = await summarize(mountAndCopy.output);
  const extracted = await summarize(filesGet.output);
  await fs.rm(mountAndCopy.output, { recursive: true, force: true });
  await fs.rm(filesGet.output, { recursive: true, force: true });
  if (copied.entries !== extracted.entries || copied.bytes !== extracted.bytes) {
    throw new Error(
      `b365 files get extracted ${extracted.entries} entries and ${extracted.bytes} bytes; cp -a copied ${copied.entries} and ${copied.bytes}`,
    );
  }

  const header = ['step', 'wall s', 'CPU s', 'server CPU s', 'peak RSS MiB', 'server RSS MiB', 'load', 'attempts'];
  const lines = [
    [
      mountAndCopy.label,
      mountAndCopy.wallSeconds.toFixed(1),
      mountAndCopy.cpuSeconds.toFixed(1),
      '',
      mountAndCopy.peakRssMiB.toFixed(0),
      '',
      (mountAndCopy.load ?? 0).toFixed(1),
      mountAndCopy.attempts,
    ],
    [
      filesGet.label,
      filesGet.wallSeconds.toFixed(1),
      filesGet.cpuSeconds.toFixed(1),
      filesGet.serverCpuSeconds.toFixed(1),
      filesGet.peakRssMiB.toFixed(0),
      filesGet.serverPeakRssMiB.toFixed(0),
      (filesGet.load ?? 0).toFixed(1),
      filesGet.attempts,
    ],
  ];
  const ratio = filesGet.wallSeconds / mountAndCopy.wallSeconds;
  const checks = [
    `both copies hold ${copied.entries} entries and ${(copied.bytes / 1e6).toFixed(0)} MB of file data`,
    target('files get wall vs mount + cp -a', ratio, 2, `${ratio.toFixed(2)}x`),
    target('files get client peak RSS (MiB)', filesGet.peakRssMiB, 200, `${filesGet.peakRssMiB.toFixed(0)} MiB`),
  ];
  process.stdout.write(
    [
      '',
      '## File-level restore: the whole ext4 tree of the 4 GiB disk',
      renderTable(header, lines),
      ...checks.map((line) => `- ${line}`),
      '',
    ].join('\n'),
  );
  return { rows: [mountAndCopy, filesGet], checks };
}
