// Extended attributes (and with them POSIX ACLs, which Linux keeps as xattrs) of
// extracted paths: collected in getfattr's dump format and applied in one
// `setfattr --restore`, which knows every namespace the target filesystem accepts.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { FileNode, FileTree } from '../fs/filesystem.js';

export class XattrDump {
  private readonly lines: string[] = [];

  constructor(
    private readonly tree: FileTree,
    private readonly root: string,
  ) {}

  /** An unreadable attribute block costs the attributes, not the file. */
  async record(node: FileNode, target: string): Promise<void> {
    const attributes = await this.tree.xattrs(node).catch(() => new Map<string, Buffer>());
    if (attributes.size === 0) return;
    this.lines.push(`# file: ${path.relative(this.root, target).replace(/\\/g, '\\\\').replace(/\n/g, '\\012')}`);
    for (const [name, value] of attributes) this.lines.push(`${name}=0x${value.toString('hex')}`);
    this.lines.push('');
  }

  /** Each attribute setfattr refuses becomes a note; the rest are applied. */
  async apply(note: (what: string, example: string) => void): Promise<void> {
    if (this.lines.length === 0) return;
    const dumpFile = path.join(this.root, `.b365-xattrs-${process.pid}`);
    await fs.writeFile(dumpFile, this.lines.join('\n'));
    try {
      const result = await execa('setfattr', ['-h', `--restore=${dumpFile}`], { cwd: this.root, reject: false });
      if (result.exitCode !== 0) {
        for (const line of String(result.stderr).split('\n').filter(Boolean))
          note(
            `extended attribute not restored (${line.replace(/^setfattr: /, '').replace(/^[^:]*: /, '')})`,
            line.split(':')[1]?.trim() ?? this.root,
          );
      }
    } catch (error) {
      note(`extended attributes not restored (${(error as Error).message})`, this.root);
    } finally {
      await fs.rm(dumpFile, { force: true });
    }
  }
}
