// A repository in a local directory. Every write goes to tmp/, is fsynced, then
// appears under its final name by link (create-only) or rename, and the directory is
// fsynced: after a crash an object is either whole under its name or not there.
// The directory is private to the server's user: directories 0700, files 0600.
import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { type Clock, systemClock } from '../../src/core/clock.js';
import { syncDirectory } from '../../src/core/atomic-file.js';
import { NotFoundError } from '../../src/core/errors.js';
import { asRepositoryFull } from '../storage-full.js';
import type { ObjectStat, ObjectStore, PutResult } from './store.js';

/** Modes of what the store creates, whatever the process umask. */
export const PRIVATE_DIRECTORY_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

const KEY_PATTERN = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._@-]+(?:\/[A-Za-z0-9._@-]+)*$/;

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
    await fs.mkdir(store.root, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
    // Repositories made before the store was private are tightened here. A root owned
    // by someone else (a mount point prepared by root) keeps the mode its owner chose.
    await fs.chmod(store.root, PRIVATE_DIRECTORY_MODE).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPERM') throw error;
    });
    await store.emptyTmpDirectory();
    return store;
  }

  /**
   * Remove leftovers of interrupted writes but keep tmp/ itself: on a full disk a new
   * directory may not fit, and the server must still start to serve reads.
   */
  private async emptyTmpDirectory(): Promise<void> {
    await fs.mkdir(this.tmpDirectory, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
    await fs.chmod(this.tmpDirectory, PRIVATE_DIRECTORY_MODE);
    for (const entry of await fs.readdir(this.tmpDirectory)) {
      await fs.rm(path.join(this.tmpDirectory, entry), { recursive: true, force: true });
    }
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
    const tmpPath = path.join(this.tmpDirectory, `${randomBytes(12).toString('hex')}.tmp`);
    try {
      await this.ensureDirectory(directory);
      await this.writeTemporary(tmpPath, bytes);
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
      await syncDirectory(directory);
      return { created: true };
    } catch (error) {
      throw asRepositoryFull(error, `writing ${key}`);
    } finally {
      // Whatever failed (a full disk half-way through a write, a link), tmp/ keeps nothing.
      await fs.unlink(tmpPath).catch(() => undefined);
    }
  }

  private async writeTemporary(tmpPath: string, bytes: Buffer): Promise<void> {
    const handle = await fs.open(tmpPath, 'wx', PRIVATE_FILE_MODE);
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
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new NotFoundError(`${key} is not in the repository`);
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
    let entries: Dirent[];
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
        if (prefix.startsWith(`${key}/`) || key.startsWith(prefix) || `${key}/`.startsWith(prefix))
          yield* this.walk(full, prefix);
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
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new NotFoundError(`${key} is not in the repository`);
      throw error;
    }
  }

  async remove(key: string): Promise<void> {
    const target = this.pathOf(key);
    await fs.rm(target, { force: true });
    await syncDirectory(path.dirname(target)).catch(() => undefined);
  }

  async move(fromKey: string, toKey: string): Promise<void> {
    const from = this.pathOf(fromKey);
    const to = this.pathOf(toKey);
    try {
      await this.ensureDirectory(path.dirname(to));
      await fs.rename(from, to);
      await syncDirectory(path.dirname(to));
      await syncDirectory(path.dirname(from));
    } catch (error) {
      throw asRepositoryFull(error, `moving ${fromKey} to ${toKey}`);
    }
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
    // One level at a time: a recursive mkdir reports a full disk as ENOENT.
    let current = this.root;
    for (const part of path.relative(this.root, directory).split(path.sep)) {
      const parent = current;
      current = path.join(current, part);
      try {
        await fs.mkdir(current, { mode: PRIVATE_DIRECTORY_MODE });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw error;
      }
      await fs.chmod(current, PRIVATE_DIRECTORY_MODE);
      // Make each new directory entry durable.
      await syncDirectory(parent);
    }
    this.knownDirectories.add(directory);
  }
}
