// Seeded damage for the filesystem readers: random bytes and bits written into a
// volume's metadata, then probe, the cross-checked capture map and the file tree run on
// each variant. Anything but success or a UserError is a failure (a TypeError, a
// RangeError, a hang); and where the map is usable, the volume as capture would restore
// it (the map's ranges, zeros elsewhere) must get the same report from the field's own
// checker as the damaged source. B365_FUZZ_COUNT sets how many variants each runs.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Test } from 'tap';
import { UserError } from '../../../src/core/errors.js';
import type { DirEntry, FilesystemModule, FileNode, FileTree } from '../../../imaging/fs/filesystem.js';
import type { Range, RangeList } from '../../../imaging/ranges.js';
import { Prng } from '../../helpers/content.js';
import { tempDir } from '../../helpers/tmp.js';
import { CHECKER_TIMED_OUT } from './damage-roundtrip.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';

export interface FuzzOptions {
  name: string;
  module: FilesystemModule;
  /** The undamaged volume. */
  base: Buffer;
  /** Byte ranges worth damaging (superblocks, tables, bitmaps, records, directories). */
  regions: Range[];
  seed: number;
  /** Variants when B365_FUZZ_COUNT is not set. */
  defaultCount: number;
  /** Every how many variants the restored volume is compared with the checker. */
  compareEvery: number;
  /** The checker's report on an image file, with the file's name taken out. */
  check(image: string): Promise<string>;
}

/** How long one variant may take before it counts as a hang. */
const VARIANT_TIMEOUT_MS = 30_000;
const MAX_WALKED_ENTRIES = 3000;
/** Files are read whole up to this size (the fuzz volumes hold nothing larger). */
const READ_BYTES = 4 << 20;

export function fuzzCount(defaultCount: number): number {
  const configured = Number(process.env.B365_FUZZ_COUNT);
  return Number.isSafeInteger(configured) && configured > 0 ? configured : defaultCount;
}

function damage(bytes: Buffer, regions: Range[], prng: Prng): string {
  const writes = 1 + (prng.next() % 8);
  const notes: string[] = [];
  for (let write = 0; write < writes; write++) {
    const [start, end] = regions[prng.next() % regions.length]!;
    const offset = start + (prng.next() % (end - start));
    if (prng.next() % 2 === 0) {
      bytes[offset] = prng.next() & 0xff;
      notes.push(`byte ${offset}`);
    } else {
      bytes[offset]! ^= 1 << (prng.next() % 8);
      notes.push(`bit of byte ${offset}`);
    }
  }
  return notes.join(', ');
}

/**
 * Walk the tree breadth-first, reading every file; errors of single entries
 * are expected. Returns what each path read as (a digest, or the error's message).
 */
async function walk(tree: FileTree, expectUserError: (error: unknown) => void): Promise<Map<string, string>> {
  const seenAs = new Map<string, string>();
  const queue: FileNode[] = [await tree.lookup('/')];
  let seen = 0;
  while (queue.length > 0 && seen < MAX_WALKED_ENTRIES) {
    const directory = queue.shift()!;
    let entries: DirEntry[];
    try {
      entries = await tree.readdir(directory);
    } catch (error) {
      expectUserError(error);
      seenAs.set(directory.path, `unreadable: ${(error as Error).message}`);
      continue;
    }
    for (const entry of entries) {
      if (++seen > MAX_WALKED_ENTRIES) break;
      const entryPath = directory.path === '/' ? `/${entry.name}` : `${directory.path}/${entry.name}`;
      try {
        const node = await tree.lookup(entryPath);
        const hash = createHash('sha256').update(
          JSON.stringify(node.stat, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value)),
        );
        if (node.stat.type === 'directory') queue.push(node);
        else if (node.stat.type === 'file') hash.update(await tree.read(node, 0, Math.min(READ_BYTES, node.stat.size)));
        else if (node.stat.type === 'symlink') hash.update(await tree.readlink(node));
        for (const [name, value] of await tree.xattrs(node)) hash.update(name).update(value);
        seenAs.set(entryPath, hash.digest('hex'));
      } catch (error) {
        expectUserError(error);
        seenAs.set(entryPath, `unreadable: ${(error as Error).message}`);
      }
    }
  }
  return seenAs;
}

/** What the module reads from a volume: its files, or why it cannot open it. */
async function readVolume(
  module: FilesystemModule,
  bytes: Buffer,
  description: string,
): Promise<Map<string, string> | string> {
  const ignore = () => undefined;
  try {
    const opened = await module.open(new MemoryBlockReader(bytes, description));
    return opened.files ? await walk(await opened.files(), ignore) : new Map();
  } catch (error) {
    return `unreadable: ${(error as Error).message}`;
  }
}

async function withTimeout<T>(what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no answer after ${VARIANT_TIMEOUT_MS} ms (a hang)`)),
      VARIANT_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The volume as a restore of its capture map writes it: the ranges, zeros elsewhere. */
function restoredBytes(bytes: Buffer, ranges: RangeList): Buffer {
  const restored = Buffer.alloc(bytes.length);
  for (const [start, end] of ranges.ranges) bytes.copy(restored, start, start, end);
  return restored;
}

export async function fuzzFilesystem(t: Test, options: FuzzOptions): Promise<void> {
  const count = fuzzCount(options.defaultCount);
  const prng = new Prng(options.seed);
  const directory = await tempDir(t, 'b365-fuzz-');
  const outcomes = { opened: 0, refused: 0, raw: 0, compared: 0 };
  for (let variant = 0; variant < count; variant++) {
    const bytes = Buffer.from(options.base);
    const damaged = damage(bytes, options.regions, prng);
    const label = `${options.name} variant ${variant} (${damaged})`;
    const unexpected: string[] = [];
    const expectUserError = (error: unknown) => {
      if (error instanceof UserError && error.message.length > 0) return;
      unexpected.push(error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error));
    };
    const reader = new MemoryBlockReader(bytes, `${options.name}-${variant}`);
    const map = await withTimeout(
      label,
      (async () => {
        if (!(await options.module.detect(reader))) return null;
        try {
          const opened = await options.module.open(reader);
          const captureMap = await opened.captureMap();
          if (opened.files) await walk(await opened.files(), expectUserError);
          return captureMap;
        } catch (error) {
          expectUserError(error);
          return null;
        }
      })(),
    );
    t.same(unexpected, [], `${label}: only typed errors`);
    if (!map) {
      outcomes.refused++;
      continue;
    }
    outcomes.opened++;
    if (map.method === 'raw') outcomes.raw++;
    if (map.method === 'raw') continue;
    // The module's own reader sees lost file data, which a checker (reading no file data) does not.
    const copy = restoredBytes(bytes, map.ranges);
    t.same(
      await readVolume(options.module, copy, reader.description),
      await readVolume(options.module, bytes, reader.description),
      `${label}: every file reads the same from the restored volume`,
    );
    if (variant % options.compareEvery !== 0) continue;
    const source = path.join(directory, 'source.img');
    const restored = path.join(directory, 'restored.img');
    await fs.writeFile(source, bytes);
    await fs.writeFile(restored, copy);
    const sourceReport = await options.check(source);
    if (sourceReport === CHECKER_TIMED_OUT) continue;
    t.equal(
      await options.check(restored),
      sourceReport,
      `${label}: the checker reports the same on the restored volume`,
    );
    outcomes.compared++;
  }
  t.comment(
    `${options.name}: ${count} variants, ${outcomes.opened} opened (${outcomes.raw} raw), ${outcomes.refused} refused, ${outcomes.compared} restored and compared`,
  );
}
