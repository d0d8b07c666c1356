// One run at a time per machine: an exclusive flock(2) on a file in the agent's state
// directory. The kernel drops it when the holder dies, so a crash never leaves a stale
// lock behind; a second process (or a second trigger in the same one) finds it taken.
import fs from 'node:fs';
import path from 'node:path';
import { type FileLock, tryExclusiveLock } from '../core/file-lock.js';

export type RunLock = FileLock;

/** Take the lock, or return null if someone holds it. */
export function tryLock(file: string): RunLock | null {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  return tryExclusiveLock(file, `${process.pid}\n`);
}
