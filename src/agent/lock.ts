// One run at a time per machine: an exclusive flock(2) on a file in the agent's state
// directory. The kernel drops it when the holder dies, so a crash never leaves a stale
// lock behind; a second process (or a second trigger in the same one) finds it taken.
import fs from 'node:fs';
import path from 'node:path';
import fsExt from 'fs-ext';

export interface RunLock {
  release(): void;
}

/** Take the lock, or return null if someone holds it. */
export function tryLock(file: string): RunLock | null {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = fs.openSync(file, 'a', 0o600);
  try {
    fsExt.flockSync(fd, 'exnb');
  } catch (error) {
    fs.closeSync(fd);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return null;
    throw error;
  }
  fs.ftruncateSync(fd);
  fs.writeSync(fd, `${process.pid}\n`);
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
