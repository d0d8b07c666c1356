// The directory an extraction writes into: where a volume path lands in it, and the
// checks that keep every write inside it (parents are real directories under the
// target, nothing is opened through a symlink, nothing is removed by following one).
import fs from 'node:fs/promises';
import path from 'node:path';
import { UnsafeTargetError } from '../../src/core/errors.js';

export class ExtractTarget {
  /** Directories known to be real and inside the target: created here, or checked once. */
  private readonly verifiedDirectories: Set<string>;

  private constructor(readonly root: string) {
    this.verifiedDirectories = new Set([root]);
  }

  /** Creates the target when missing; its real path is the root everything is checked against. */
  static async prepare(to: string): Promise<ExtractTarget> {
    const root = path.resolve(to);
    await fs.mkdir(root, { recursive: true });
    return new ExtractTarget(await fs.realpath(root));
  }

  destination(volumePath: string): string {
    return path.resolve(this.root, `.${volumePath}`);
  }

  /** The parent must be a real directory inside the target: never follow a symlink out. */
  async checkParent(target: string): Promise<void> {
    const parent = path.dirname(target);
    if (this.verifiedDirectories.has(parent)) return;
    const stats = await fs.lstat(parent);
    const real = await fs.realpath(parent);
    if (!stats.isDirectory() || (real !== this.root && !real.startsWith(`${this.root}${path.sep}`))) {
      throw new UnsafeTargetError(`${parent} is not a directory inside ${this.root}: refusing to write through it`);
    }
    this.verifiedDirectories.add(parent);
  }

  /** A directory this extraction made: writes below it need no further check. */
  addDirectory(target: string): void {
    this.verifiedDirectories.add(target);
  }

  /** Remove what an earlier extraction left, without following it. */
  async clear(target: string): Promise<void> {
    const existing = await fs.lstat(target).catch(() => null);
    if (!existing) return;
    if (existing.isDirectory()) throw new UnsafeTargetError(`${target} is a directory in the way of a file`);
    await fs.unlink(target);
  }
}
