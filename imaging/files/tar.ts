// A tar stream of paths from a volume (pax format, as GNU tar reads it): the same
// walk as extraction, for `files get --tar` and the HTTP `?archive=tar`.
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { FileTree } from '../fs/filesystem.js';
import { walkPaths } from './walk.js';

const READ_BLOCK = 4 << 20;

export interface TarReport {
  entries: number;
  bytes: number;
  skipped: { path: string; reason: string }[];
}

function isText(value: Buffer): boolean {
  return !value.includes(0) && Buffer.from(value.toString('utf8'), 'utf8').equals(value);
}

export async function writeTar(tree: FileTree, paths: string[], output: Writable): Promise<TarReport> {
  const pack = tar.pack();
  const done = pipeline(pack, output);
  const report: TarReport = { entries: 0, bytes: 0, skipped: [] };
  const firstPathOfInode = new Map<number, string>();
  const add = (header: Partial<tar.Header> & { name: string }, body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      pack.entry(header, body ?? Buffer.alloc(0), (error) => (error ? reject(error) : resolve()));
    });

  await walkPaths(
    tree,
    paths,
    {
      enter: async ({ path, node, stat }) => {
        const name = path === '/' ? '.' : path.slice(1);
        const base = { name, mode: stat.mode, uid: stat.uid, gid: stat.gid, mtime: new Date(stat.mtimeMs) };
        const pax: Record<string, string> = {};
        if (stat.type === 'file' || stat.type === 'directory') {
          for (const [key, value] of await tree.xattrs(node).catch(() => new Map<string, Buffer>())) {
            if (isText(value)) pax[`SCHILY.xattr.${key}`] = value.toString('utf8');
            else report.skipped.push({ path, reason: `binary extended attribute ${key} is not carried in tar` });
          }
        }
        const extra = Object.keys(pax).length ? { pax } : {};
        report.entries++;
        if (stat.type === 'directory') return add({ ...base, ...extra, type: 'directory' });
        if (stat.type === 'symlink') return add({ ...base, type: 'symlink', linkname: await tree.readlink(node) });
        if (stat.type === 'file') {
          const first = stat.nlink > 1 ? firstPathOfInode.get(stat.inode) : undefined;
          if (first) return add({ ...base, type: 'link', linkname: first });
          if (stat.nlink > 1) firstPathOfInode.set(stat.inode, name);
          const stream = pack.entry({ ...base, ...extra, type: 'file', size: stat.size });
          const finished = new Promise<void>((resolve, reject) => {
            stream.on('finish', resolve);
            stream.on('error', reject);
          });
          for (let offset = 0; offset < stat.size; offset += READ_BLOCK) {
            const bytes = await tree.read(node, offset, Math.min(READ_BLOCK, stat.size - offset));
            report.bytes += bytes.length;
            if (!stream.write(bytes)) await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
          }
          (stream as unknown as { end(): void }).end();
          return finished;
        }
        if (stat.type === 'fifo') return add({ ...base, type: 'fifo' });
        if (stat.type === 'block-device' || stat.type === 'char-device') {
          const rdev = stat.rdev ?? 0;
          return add({
            ...base,
            type: stat.type === 'block-device' ? 'block-device' : 'character-device',
            devmajor: (rdev >> 8) & 0xfff,
            devminor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
          });
        }
        report.entries--;
        report.skipped.push({ path, reason: `${stat.type} not carried in tar` });
      },
      skip: (path, reason) => report.skipped.push({ path, reason }),
    },
    { withParents: false },
  );
  pack.finalize();
  await done;
  return report;
}
