// Files replaced whole or not at all, and durable once the call returns: a temporary file
// beside the target is written and fsynced, renamed over it, and the directory fsynced, so
// a crash or power cut leaves the old content or the new, never half of either, and no
// temporary file is left behind when the write fails (a full disk).
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

export interface AtomicWriteOptions {
  /** Permission bits of the new file, whatever the umask (default 0644). */
  mode?: number;
  /** Create the parent directory (with this mode) when it is missing. */
  directoryMode?: number;
}

export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const directory = path.dirname(file);
  if (options.directoryMode !== undefined) await fs.mkdir(directory, { recursive: true, mode: options.directoryMode });
  const mode = options.mode ?? 0o644;
  // A name of its own: two writers of one file never share (and never delete) a temporary.
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await fs.open(temporary, 'wx', mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, file);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(directory);
}

/** Make a rename or a new entry in `directory` survive a power cut. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await fs.open(directory, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
