// `b365 files ls|get`: browse and extract files from any image without restoring it.
import path from 'node:path';
import type { Command } from 'commander';
import { extractFiles, type ExtractReport } from '../../../imaging/files/extract.js';
import { planExtraction, type ExtractPlan } from '../../../imaging/files/extract-plan.js';
import { listPath, modeString } from '../../../imaging/files/listing.js';
import { openImageVolume } from '../../../imaging/files/open.js';
import { OVERWRITE_MODES, type OverwriteMode } from '../../../imaging/files/overwrite.js';
import { writeTar } from '../../../imaging/files/tar.js';
import { FormatError, UsageError } from '../../core/errors.js';
import { globals, REPO_OPTION_HELP, repositoryFor } from '../context.js';
import { fileProgress, printJson } from '../output.js';
import { formatBytes, formatDuration } from '../../core/units.js';
import { plural } from '../../core/plural.js';

export function registerFiles(program: Command): void {
  const files = program
    .command('files')
    .description('browse and extract files from an image, without restoring the disk')
    .option('--repo <dir>', REPO_OPTION_HELP);

  files
    .command('ls')
    .description('list a directory (or show a file) inside an image')
    .argument('<image>', 'image id or MACHINE@latest')
    .argument('[path]', 'path from the volume root', '/')
    .option('--volume <n>', 'partition number (as in /dev/sdaN); default: the largest filesystem')
    .action(async (reference: string, volumePath: string, options: { volume?: string }, command: Command) => {
      const client = await repositoryFor(command, 'interactive', 'existing');
      try {
        const opened = await openImageVolume(client, reference, options.volume);
        const listing = await listPath(opened.tree, volumePath);
        if (globals(command).json) return printJson({ image: opened.image, volume: opened.volume.id, ...listing });
        const width = Math.max(1, ...listing.entries.map((entry) => String(entry.size).length));
        for (const entry of listing.entries) {
          process.stdout.write(
            `${modeString(entry.type, entry.mode)} ${String(entry.nlink).padStart(2)} ${String(entry.uid).padEnd(5)} ${String(entry.gid).padEnd(5)} ${String(entry.size).padStart(width)} ${entry.mtime.replace('T', ' ').slice(0, 19)} ${entry.name}${entry.target !== null ? ` -> ${entry.target}` : ''}\n`,
          );
        }
      } finally {
        await client.close();
      }
    });

  files
    .command('get')
    .description('copy paths out of an image: each lands under --to with its full path, as tar would')
    .argument('<image>', 'image id or MACHINE@latest')
    .argument('<paths...>', 'paths from the volume root')
    .option('--volume <n>', 'partition number (as in /dev/sdaN); default: the largest filesystem')
    .option('--to <dir>', 'target directory')
    .option('--tar', 'write a tar stream to stdout instead')
    .option(
      '--overwrite <mode>',
      'paths that already exist under --to: never (keep them), if-changed (replace those whose size or mtime differ), always (replace them); without it, any existing path stops the command before anything is written',
    )
    .action(async (reference: string, paths: string[], options: GetOptions, command: Command) => {
      if (!options.tar && !options.to) throw new UsageError('give --to DIR, or --tar for a tar stream on stdout');
      if (options.tar && options.to) throw new UsageError('choose --to DIR or --tar, not both');
      if (options.tar && options.overwrite) throw new UsageError('--overwrite applies to --to DIR, not to --tar');
      const overwrite = overwriteMode(options.overwrite);
      const client = await repositoryFor(command, 'transfer', 'existing');
      try {
        // A whole tree streams through: a small cache holds the metadata it reads again.
        const opened = await openImageVolume(client, reference, options.volume, { cacheBytes: 24 << 20 });
        if (options.tar) {
          const report = await writeTar(opened.tree, paths, process.stdout);
          for (const skipped of report.skipped)
            process.stderr.write(`b365: not in the tar: ${skipped.path}: ${skipped.reason}\n`);
          return;
        }
        await extractInto(opened, paths, options.to!, overwrite, globals(command).json === true);
      } finally {
        await client.close();
      }
    });
}

interface GetOptions {
  volume?: string;
  to?: string;
  tar?: boolean;
  overwrite?: string;
}

function overwriteMode(text: string | undefined): OverwriteMode | null {
  if (text === undefined) return null;
  if (!(OVERWRITE_MODES as readonly string[]).includes(text))
    throw new UsageError(`--overwrite takes ${OVERWRITE_MODES.join(', ')}, got ${JSON.stringify(text)}`);
  return text as OverwriteMode;
}

/** Existing paths and no --overwrite: refuse before writing, naming the first of them. */
function refuseConflicts(plan: ExtractPlan, to: string): never {
  const { count, first } = plan.conflicts;
  const more = count > first.length ? [`  (and ${count - first.length} more)`] : [];
  throw new UsageError(
    [
      `${plural(count, 'path')} to extract ${count === 1 ? 'exists' : 'exist'} already under ${path.resolve(to)}; nothing was written:`,
      ...first.map((conflict) => `  ${conflict}`),
      ...more,
      'choose --overwrite never (keep them), if-changed (replace those whose size or mtime differ) or always (replace them)',
    ].join('\n'),
    { details: { conflicts: count, firstConflicts: first } },
  );
}

type OpenedImageVolume = Awaited<ReturnType<typeof openImageVolume>>;

/** Walk first (totals for the progress bar, conflicts before any write), then extract. */
async function extractInto(
  opened: OpenedImageVolume,
  paths: string[],
  to: string,
  overwrite: OverwriteMode | null,
  json: boolean,
): Promise<void> {
  const started = Date.now();
  const plan = await planExtraction(opened.tree, paths, to, overwrite);
  if (plan.conflicts.count > 0) refuseConflicts(plan, to);
  const progress = fileProgress(`extracting from ${opened.image}`, !json, plan);
  let report: ExtractReport;
  try {
    // Nothing existed when the walk looked: anything that appears since is kept, not replaced.
    report = await extractFiles({
      tree: opened.tree,
      paths,
      to,
      overwrite: overwrite ?? 'never',
      onProgress: (bytes) => progress.bytes(bytes),
      onFile: () => progress.file(),
    });
  } finally {
    progress.stop();
  }
  const result = {
    image: opened.image,
    volume: opened.volume.id,
    to: path.resolve(to),
    ...report,
    chunksFetched: opened.reader.stats.chunksFetched,
    bytesFetched: opened.reader.stats.bytesFetched,
    durationMs: Date.now() - started,
  };
  const unreadable = report.notRestored.filter((problem) => problem.what.startsWith('cannot be read'));
  if (json) printJson(result);
  else printExtraction(result);
  const unreadableCount = unreadable.reduce((sum, problem) => sum + problem.count, 0);
  if (unreadableCount)
    throw new FormatError(
      `${plural(unreadableCount, 'path')} could not be read from ${opened.image} (the rest was extracted): ${unreadable.map((problem) => `${problem.example}: ${problem.what}`).join('; ')}`,
    );
}

function printExtraction(
  result: ExtractReport & { image: string; volume: string; to: string; durationMs: number },
): void {
  const written = [plural(result.files, 'file'), plural(result.directories, 'directory', 'directories')];
  if (result.symlinks) written.push(plural(result.symlinks, 'symlink'));
  if (result.hardLinks) written.push(plural(result.hardLinks, 'hard link'));
  if (result.special) written.push(plural(result.special, 'special file'));
  process.stdout.write(
    `extracted ${written.join(', ')} (${formatBytes(result.bytes)}) from ${result.image} ${result.volume} into ${result.to} in ${formatDuration(result.durationMs)}\n`,
  );
  const existing = [
    result.replaced ? `${result.replaced} replaced` : null,
    result.unchanged ? `${result.unchanged} unchanged (not rewritten)` : null,
    result.kept ? `${result.kept} kept as they were` : null,
  ].filter(Boolean);
  if (existing.length) process.stdout.write(`  already there: ${existing.join(', ')}\n`);
  for (const problem of result.notRestored)
    process.stdout.write(`  not restored: ${problem.what}: ${problem.count} (e.g. ${problem.example})\n`);
}
