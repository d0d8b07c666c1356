// A repository in a local directory. Every write goes to tmp/, is fsynced, then
// appears under its final name by link (create-only) or rename, and the directory is
// fsynced: after a crash an object is either whole under its name or not there.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { type Clock, systemClock } from '../../src/clock.js';
import { NotFoundError } from '../../src/errors.js';
import type { ObjectStat, ObjectStore, PutResult } from './store.js';

const KEY_PATTERN = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._@-]+(?:\/[A-Za-z0-9._@-]+)*$/;

async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await fs.open(directory, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class LocalStore implements ObjectStore {
  readonly description: string;
  private readonly tmpDirectory: string;
  private readonly knownDirectories = new Set<string>();

  private constructor(
    readonly root: string,
    /** Stamps file times: garbage collection compares them with the server's clock. */
    private readonly clock: Clock,
  ) {
    this.description = `local directory ${root}`;
    this.tmpDirectory = path.join(root, 'tmp');
  }

  /** Open (creating if needed) a store; leftovers of interrupted writes are removed. */
  static async open(root: string, clock: Clock = systemClock): Promise<LocalStore> {
    const store = new LocalStore(path.resolve(root), clock);
    await fs.mkdir(store.root, { recursive: true, mode: 0o750 });
    await fs.rm(store.tmpDirectory, { recursive: true, force: true });
    await fs.mkdir(store.tmpDirectory, { recursive: true });
    return store;
  }

  pathOf(key: string): string {
    if (!KEY_PATTERN.test(key) || key.startsWith('tmp/')) throw new Error(`invalid store key ${JSON.stringify(key)}`);
    return path.join(this.root, key);
  }

  async put(key: string, bytes: Buffer, options: { ifAbsent?: boolean } = {}): Promise<PutResult> {
    const finalPath = this.pathOf(key);
    if (options.ifAbsent && (await this.exists(finalPath))) {
      await this.touch(key);
      return { created: false };
    }
    const directory = path.dirname(finalPath);
    await this.ensureDirectory(directory);
    const tmpPath = path.join(this.tmpDirectory, `${randomBytes(12).toString('hex')}.tmp`);
    const handle = await fs.open(tmpPath, 'wx', 0o640);
    try {
      await handle.writeFile(bytes);
      // The write stamped the system's time; another clock (tests) stamps its own.
      if (this.clock !== systemClock) {
        const now = new Date(this.clock.now());
        await handle.utimes(now, now);
      }
      await handle.datasync();
    } finally {
      await handle.close();
    }
    try {
      if (options.ifAbsent) {
        try {
          await fs.link(tmpPath, finalPath);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
            await this.touch(key);
            return { created: false };
          }
          throw error;
        }
      } else {
        await fs.rename(tmpPath, finalPath);
      }
      await fsyncDirectory(directory);
      return { created: true };
    } finally {
      await fs.unlink(tmpPath).catch(() => undefined);
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${key} is not in the repository`);
      throw error;
    }
  }

  async stat(key: string): Promise<ObjectStat | null> {
    try {
      const stats = await fs.stat(this.pathOf(key));
      return { key, size: stats.size, mtimeMs: stats.mtimeMs };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectStat> {
    const slash = prefix.lastIndexOf('/');
    const start = slash < 0 ? this.root : path.join(this.root, prefix.slice(0, slash));
    yield* this.walk(start, prefix);
  }

  private async *walk(directory: string, prefix: string): AsyncIterable<ObjectStat> {
    let entries;
    try {
      entries = await fs.readdir(directory, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const full = path.join(directory, entry.name);
      const key = path.relative(this.root, full).split(path.sep).join('/');
      if (key === 'tmp' || key.startsWith('tmp/')) continue;
      if (entry.isDirectory()) {
        if (prefix.startsWith(`${key}/`) || key.startsWith(prefix) || `${key}/`.startsWith(prefix)) yield* this.walk(full, prefix);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        const stats = await fs.stat(full).catch(() => null);
        if (stats) yield { key, size: stats.size, mtimeMs: stats.mtimeMs };
      }
    }
  }

  async touch(key: string, when: Date = new Date(this.clock.now())): Promise<void> {
    try {
      await fs.utimes(this.pathOf(key), when, when);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${key} is not in the repository`);
      throw error;
    }
  }

  async remove(key: string): Promise<void> {
    const target = this.pathOf(key);
    await fs.rm(target, { force: true });
    await fsyncDirectory(path.dirname(target)).catch(() => undefined);
  }

  async move(fromKey: string, toKey: string): Promise<void> {
    const from = this.pathOf(fromKey);
    const to = this.pathOf(toKey);
    await this.ensureDirectory(path.dirname(to));
    await fs.rename(from, to);
    await fsyncDirectory(path.dirname(to));
    await fsyncDirectory(path.dirname(from));
  }

  async freeBytes(): Promise<number | null> {
    const stats = await fs.statfs(this.root);
    return stats.bavail * stats.bsize;
  }

  private async exists(file: string): Promise<boolean> {
    try {
      await fs.access(file);
      return true;
    } catch {
      return false;
    }
  }

  private async ensureDirectory(directory: string): Promise<void> {
    if (this.knownDirectories.has(directory)) return;
    const firstCreated = await fs.mkdir(directory, { recursive: true, mode: 0o750 });
    if (firstCreated) {
      // Make each new directory entry durable, from the first one created downwards.
      let current = path.dirname(firstCreated);
      const chain = path.relative(current, directory).split(path.sep);
      for (const part of chain) {
        await fsyncDirectory(current);
        current = path.join(current, part);
      }
    }
    this.knownDirectories.add(directory);
  }
}
