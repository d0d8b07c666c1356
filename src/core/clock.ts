// Time, injectable. The server owns time (image timestamps, leases, schedules); tests
// replace the clock so that hours pass in seconds.
import fs from 'node:fs';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * A clock whose offset from real time is read from a file holding a number of
 * milliseconds; a test advances time by rewriting the file. Used only when the
 * B365_CLOCK_OFFSET_FILE environment variable names such a file.
 */
export function offsetFileClock(file: string): Clock {
  let cached = 0;
  let checkedAt = 0;
  return {
    now() {
      const real = Date.now();
      if (real - checkedAt > 50) {
        checkedAt = real;
        try {
          cached = Number(fs.readFileSync(file, 'utf8').trim()) || 0;
        } catch {
          cached = 0;
        }
      }
      return real + cached;
    },
  };
}

export function clockFromEnvironment(): Clock {
  const file = process.env.B365_CLOCK_OFFSET_FILE;
  return file ? offsetFileClock(file) : systemClock;
}
