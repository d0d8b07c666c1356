// Remembers the upload session of an unfinished capture, so that a rerun after a
// crash (of the client or the server) resumes it instead of sending everything again.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import { digestOf } from '../format/digest.js';

export interface SessionState {
  sessionId: string;
  server: string;
  machine: string;
  sources: string[];
  createdAt: string;
}

export function defaultStateDirectory(): string {
  if (process.env.B365_STATE_DIR) return process.env.B365_STATE_DIR;
  if (process.getuid?.() === 0) return '/var/lib/backup365';
  return path.join(process.env.XDG_STATE_HOME ?? path.join(os.homedir(), '.local', 'state'), 'backup365');
}

export class SessionStateFile {
  readonly file: string;

  constructor(directory: string, server: string, machine: string, sources: string[]) {
    const key = digestOf(Buffer.from(JSON.stringify([server, machine, [...sources].sort()]))).slice(0, 24);
    this.file = path.join(directory, 'sessions', `${machine}-${key}.json`);
  }

  async load(): Promise<SessionState | null> {
    try {
      return JSON.parse(await fs.readFile(this.file, 'utf8')) as SessionState;
    } catch {
      return null;
    }
  }

  /** Durable before the upload starts: a crash right after must still find the session. */
  async save(state: SessionState): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(state, null, 2), { mode: 0o600, directoryMode: 0o700 });
  }

  async clear(): Promise<void> {
    await fs.rm(this.file, { force: true });
  }
}
