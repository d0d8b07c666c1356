// Access and modification times of extracted paths, to the nanosecond as the filesystem
// holds them. Node rounds times to a double of seconds, so the whole batch goes through
// one python3 (utimensat) when there is one; otherwise Node sets them to the microsecond
// and says so.
import fs from 'node:fs/promises';
import { execa } from 'execa';
import type { FileStat } from '../fs/filesystem.js';

export interface TimedPath {
  target: string;
  stat: FileStat;
  /** A symlink gets its own times, not its target's. */
  symlink: boolean;
}

const SET_TIMES = `
import json, os, sys
for line in sys.stdin:
    path, atime, mtime, follow = json.loads(line)
    try:
        os.utime(path, ns=(atime, mtime), follow_symlinks=follow)
    except OSError as error:
        print(path + "\\t" + (error.strerror or str(error)), file=sys.stderr)
`;

const nanoseconds = (ms: number, ns: bigint | undefined) => (ns ?? BigInt(Math.round(ms * 1e6))).toString();

export async function restoreTimes(entries: TimedPath[], note: (what: string, example: string) => void): Promise<void> {
  if (entries.length === 0) return;
  const input = entries
    .map(
      ({ target, stat, symlink }) =>
        `[${JSON.stringify(target)},${nanoseconds(stat.atimeMs, stat.atimeNs)},${nanoseconds(stat.mtimeMs, stat.mtimeNs)},${!symlink}]`,
    )
    .join('\n');
  const result = await execa('python3', ['-c', SET_TIMES], { input, reject: false });
  if (result.exitCode === 0 && !result.failed) {
    for (const line of String(result.stderr).split('\n').filter(Boolean))
      note(`times not restored (${line.split('\t')[1]})`, line.split('\t')[0]!);
    return;
  }
  note('times restored to the microsecond only (python3 is not available for nanoseconds)', entries[0]!.target);
  await restoreMicroseconds(entries, note);
}

async function restoreMicroseconds(entries: TimedPath[], note: (what: string, example: string) => void): Promise<void> {
  for (const { target, stat, symlink } of entries) {
    const atime = stat.atimeMs / 1000;
    const mtime = stat.mtimeMs / 1000;
    await (symlink ? fs.lutimes(target, atime, mtime) : fs.utimes(target, atime, mtime)).catch((error: Error) =>
      note(`times not restored (${error.message})`, target),
    );
  }
}
