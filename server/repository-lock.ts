// One process at a time opens a repository directory: `b365 server` or an in-process
// capture, restore or listing (`--repo DIR`). Two writers would each empty the other's
// tmp/ and race on the catalog. The lock is a flock on DIR/lock holding who took it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConflictError } from '../src/core/errors.js';
import { type FileLock, tryExclusiveLock } from '../src/core/file-lock.js';

export const LOCK_FILE = 'lock';

/** Who holds a repository: written into the lock file by the holder. */
export interface LockHolder {
  pid: number;
  command: string;
  host: string;
  since: string;
}

/** The directory is open in another process (or another open in this one). */
export class RepositoryInUseError extends ConflictError {
  override readonly code = 'repository_in_use';
  constructor(
    readonly directory: string,
    readonly holder: LockHolder | null,
  ) {
    super(
      holder
        ? `repository ${directory} is in use by ${holder.command} (pid ${holder.pid} on host ${holder.host})`
        : `repository ${directory} is in use by another process`,
      { details: { repository: directory, holder } },
    );
  }
}

/** The holder as the lock file names it; null when it is unreadable or being written. */
export function readLockHolder(directory: string): LockHolder | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(directory, LOCK_FILE), 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.command !== 'string' || typeof parsed.host !== 'string')
      return null;
    return { pid: parsed.pid, command: parsed.command, host: parsed.host, since: String(parsed.since ?? '') };
  } catch {
    return null;
  }
}

/**
 * Lock `directory` for this process, naming `command` as the holder ("b365 server",
 * "b365 image"); throws RepositoryInUseError when someone holds it. `create` makes the
 * directory first (private, as the store makes it), for a repository's first use.
 */
export function lockRepository(directory: string, command: string, options: { create?: boolean } = {}): FileLock {
  const root = path.resolve(directory);
  if (options.create) fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const holder: LockHolder = { pid: process.pid, command, host: os.hostname(), since: new Date().toISOString() };
  const lock = tryExclusiveLock(path.join(root, LOCK_FILE), `${JSON.stringify(holder)}\n`);
  if (!lock) throw new RepositoryInUseError(root, readLockHolder(root));
  return lock;
}
