// `b365 files ls|get`: browse and extract files from any image without restoring it.
import path from 'node:path';
import type { Command } from 'commander';
import { extractFiles } from '../../../imaging/files/extract.js';
import { listPath, modeString } from '../../../imaging/files/listing.js';
import { openImageVolume } from '../../../imaging/files/open.js';
import { writeTar } from '../../../imaging/files/tar.js';
import { FormatError, UsageError } from '../../errors.js';
import { clientFor, globals } from '../context.js';
import { byteProgress, formatBytes, formatDuration, printJson } from '../output.js';

export function registerFiles(program: Command): void {
  const files = program.command('files').description('browse and extract files from an image, without restoring the disk');

  files
    .command('ls')
    .description('list a directory (or show a file) inside an image')
    .argument('<image>', 'image id or MACHINE@latest')
    .argument('[path]', 'path from the volume root', '/')
    .option('--volume <n>', 'partition number (as in /dev/sdaN); default: the largest filesystem')
    .action(async (reference: string, volumePath: string, options: { volume?: string }, command: Command) => {
      const client = await clientFor(command);
      try {
        const opened = await openImageVolume(client, reference, options.volume);
        const listing = await listPath(opened.tree, volumePath);
        if (globals(command).json) return printJson({ image: opened.image, volume: opened.volume.id, ...listing });
        const width = Math.max(1, ...listing.entries.map((entry) => String(entry.size).length));
        for (const entry of listing.entries) {
          process.stdout.write(`${modeString(entry.type, entry.mode)} ${String(entry.nlink).padStart(2)} ${String(entry.uid).padEnd(5)} ${String(entry.gid).padEnd(5)} ${String(entry.size).padStart(width)} ${entry.mtime.replace('T', ' ').slice(0, 19)} ${entry.name}${entry.target !== null ? ` -> ${entry.target}` : ''}\n`);
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
    .action(async (reference: string, paths: string[], options: { volume?: string; to?: string; tar?: boolean }, command: Command) => {
      const global = globals(command);
      if (!options.tar && !options.to) throw new UsageError('give --to DIR, or --tar for a tar stream on stdout');
      if (options.tar && options.to) throw new UsageError('choose --to DIR or --tar, not both');
      const client = await clientFor(command, 'transfer');
      const started = Date.now();
      try {
        // A whole tree streams through: a small cache holds the metadata it reads again.
        const opened = await openImageVolume(client, reference, options.volume, { cacheBytes: 24 << 20 });
        if (options.tar) {
          const report = await writeTar(opened.tree, paths, process.stdout);
          for (const skipped of report.skipped) process.stderr.write(`b365: not in the tar: ${skipped.path}: ${skipped.reason}\n`);
          return;
        }
        const progress = byteProgress(`extracting from ${opened.image}`, !global.json);
        let done = 0;
        const report = await extractFiles({ tree: opened.tree, paths, to: options.to!, onProgress: (bytes) => progress.update((done += bytes), done) });
        progress.stop();
        const result = { image: opened.image, volume: opened.volume.id, to: path.resolve(options.to!), ...report, chunksFetched: opened.reader.stats.chunksFetched, bytesFetched: opened.reader.stats.bytesFetched, durationMs: Date.now() - started };
        const unreadable = report.notRestored.filter((problem) => problem.what.startsWith('cannot be read')).reduce((sum, problem) => sum + problem.count, 0);
        if (global.json) printJson(result);
        else {
          process.stdout.write(`extracted ${report.files} files, ${report.directories} directories, ${report.symlinks} symlinks, ${report.hardLinks} hard links (${formatBytes(report.bytes)}) from ${opened.image} ${opened.volume.id} into ${result.to} in ${formatDuration(result.durationMs)}\n`);
          for (const problem of report.notRestored) process.stdout.write(`  not restored: ${problem.what}: ${problem.count} (e.g. ${problem.example})\n`);
        }
        if (unreadable) throw new FormatError(`${unreadable} paths could not be read from ${opened.image} (the rest was extracted): ${report.notRestored.filter((problem) => problem.what.startsWith('cannot be read')).map((problem) => `${problem.example}: ${problem.what}`).join('; ')}`);
      } finally {
        await client.close();
      }
    });
}
