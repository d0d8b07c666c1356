// An exclusive flock(2) on a file, taken without waiting. The kernel drops it when the
// holder's last descriptor closes, so a process that dies never leaves a stale lock; a
// second open of the same file (in this process or another) finds it taken.
import fs from 'node:fs';
import fsExt from 'fs-ext';

export interface FileLock {
  release(): void;
}

/**
 * Take the lock on `file` (created with `mode` if absent) and write `owner` into it, so
 * whoever finds it taken can say by whom; null when someone else holds it.
 */
export function tryExclusiveLock(file: string, owner: string, mode = 0o600): FileLock | null {
  const fd = fs.openSync(file, 'a', mode);
  try {
    fsExt.flockSync(fd, 'exnb');
  } catch (error) {
    fs.closeSync(fd);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return null;
    throw error;
  }
  fs.ftruncateSync(fd);
  fs.writeSync(fd, owner);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      fsExt.flockSync(fd, 'un');
      fs.closeSync(fd);
    },
  };
}
