// Damaged NTFS metadata: a broken MFT record, index block or compressed unit is a
// FormatError naming the path, the structure and its byte offset, and leaves the rest
// of the tree readable; random damage never escapes as anything but a UserError.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { UserError } from '../../../src/core/errors.js';
import type { FileNode, FileTree } from '../../../imaging/fs/filesystem.js';
import { ntfsFilesystem } from '../../../imaging/fs/ntfs.js';
import { Prng, textLike } from '../../helpers/content.js';
import { MiB, run } from '../../helpers/disk.js';
import { tempDir } from '../../helpers/tmp.js';
import { makeNtfsImage, setXattr, withNtfsMount } from './ntfs-helpers.js';
import { MemoryBlockReader } from '../../helpers/memory-reader.js';

interface Fixture {
  image: string;
  bytes: Buffer;
  /** MFT record number of each file, as ntfs-3g reports it (st_ino). */
  records: Map<string, number>;
  mftOffset: number;
  recordSize: number;
}

async function buildFixture(t: { teardown(fn: () => unknown): void }): Promise<Fixture> {
  const directory = await tempDir(t);
  const image = await makeNtfsImage(path.join(directory, 'damaged.img'), 32 * MiB);
  const records = new Map<string, number>();
  await withNtfsMount(t, image, async (root) => {
    const prng = new Prng(5);
    await fs.mkdir(path.join(root, 'docs'));
    for (const name of ['victim.txt', 'sibling.txt', 'stale.txt', 'broken-attribute.txt', 'secret.txt'])
      await fs.writeFile(path.join(root, 'docs', name), textLike(prng, 9000));
    await fs.mkdir(path.join(root, 'many'));
    for (let index = 0; index < 600; index++)
      await fs.writeFile(path.join(root, 'many', `entry-${String(index).padStart(4, '0')}`), `${index}\n`);
    await fs.mkdir(path.join(root, 'compressed'));
    await setXattr(path.join(root, 'compressed'), 'system.ntfs_attrib_be', Buffer.from([0, 0, 0x08, 0x10]));
    await fs.writeFile(path.join(root, 'compressed', 'text.txt'), textLike(prng, 200000));
    await fs.writeFile(path.join(root, 'links-source'), 'linked\n');
    for (let index = 0; index < 30; index++)
      await fs.link(path.join(root, 'links-source'), path.join(root, `link-with-a-long-name-${index}`));
    await fs.symlink('docs/sibling.txt', path.join(root, 'symlink'));
    const sparse = await fs.open(path.join(root, 'sparse'), 'w');
    await sparse.write(Buffer.from('end'), 0, undefined, 3 * MiB);
    await sparse.close();
    await setXattr(path.join(root, 'docs', 'sibling.txt'), 'user.note', Buffer.from('stream'));
    for (const name of [
      'docs/victim.txt',
      'docs/stale.txt',
      'docs/broken-attribute.txt',
      'docs/secret.txt',
      'many',
      'compressed/text.txt',
    ]) {
      records.set(`/${name}`, Number((await fs.stat(path.join(root, name))).ino));
    }
  });
  const bytes = await fs.readFile(image);
  const clusterSize = bytes.readUInt16LE(11) * bytes[13]!;
  const recordSize = 2 ** -bytes.readInt8(64);
  return { image, bytes, records, mftOffset: Number(bytes.readBigInt64LE(48)) * clusterSize, recordSize };
}

/** Byte offset of a record in a young volume, where $MFT is still one run; checked by its name. */
function recordOffset(fixture: Fixture, file: string): number {
  const offset = fixture.mftOffset + fixture.records.get(file)! * fixture.recordSize;
  const record = fixture.bytes.subarray(offset, offset + fixture.recordSize);
  if (record.toString('latin1', 0, 4) !== 'FILE' || !record.includes(Buffer.from(path.basename(file), 'utf16le')))
    throw new Error(`record of ${file} not found at ${offset}`);
  return offset;
}

/** Volume byte offset of the first cluster of an attribute, from `ntfsinfo -v`'s runlist. */
async function firstClusterOf(fixture: Fixture, file: string, attribute: string): Promise<number> {
  const text = await run('ntfsinfo', ['-v', '-F', file, fixture.image]);
  const section = text.slice(text.indexOf(`Dumping attribute ${attribute}`));
  const match = /Runlist:\s+VCN\s+LCN\s+Length\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/i.exec(section);
  if (!match) throw new Error(`no runlist for ${attribute} of ${file}`);
  return parseInt(match[1]!, 16) * (fixture.bytes.readUInt16LE(11) * fixture.bytes[13]!);
}

async function treeOf(bytes: Buffer): Promise<FileTree> {
  const volume = await ntfsFilesystem.open(new MemoryBlockReader(bytes, 'damaged.img'));
  return volume.files!();
}

t.test('damage in one place is named and stays there', async (t) => {
  const fixture = await buildFixture(t);
  const { bytes } = fixture;

  const victim = recordOffset(fixture, '/docs/victim.txt');
  const stale = recordOffset(fixture, '/docs/stale.txt');
  const brokenAttribute = recordOffset(fixture, '/docs/broken-attribute.txt');
  const damaged = Buffer.from(bytes);
  // A torn write: the sector tail no longer carries the update sequence number.
  damaged.writeUInt16LE(damaged.readUInt16LE(victim + 510) ^ 0xffff, victim + 510);
  // A file whose record was freed while its directory entry stayed.
  damaged.writeUInt16LE(damaged.readUInt16LE(stale + 22) & ~1, stale + 22);
  // An attribute whose length runs past the record.
  const firstAttribute = brokenAttribute + damaged.readUInt16LE(brokenAttribute + 20);
  damaged.writeUInt32LE(0x7ff8, firstAttribute + 4);
  // The first index block of /many with a wrong magic, and a compressed unit with a bad chunk.
  const indexBlock = await firstClusterOf(fixture, '/many', '$INDEX_ALLOCATION');
  damaged.write('INDY', indexBlock, 'latin1');
  const compressedUnit = await firstClusterOf(fixture, '/compressed/text.txt', '$DATA');
  damaged.writeUInt16LE(0x3000 | (100 - 3), compressedUnit);
  // Not damage: the "encrypted" flag on a $DATA attribute, as EFS leaves it.
  const secret = recordOffset(fixture, '/docs/secret.txt');
  let dataAttribute = secret + damaged.readUInt16LE(secret + 20);
  while (damaged.readUInt32LE(dataAttribute) !== 0x80) dataAttribute += damaged.readUInt32LE(dataAttribute + 4);
  damaged.writeUInt16LE(damaged.readUInt16LE(dataAttribute + 12) | 0x4000, dataAttribute + 12);

  const tree = await treeOf(damaged);
  await t.rejects(
    tree.lookup('/docs/victim.txt'),
    {
      name: 'FormatError',
      message: new RegExp(
        `^/docs/victim\\.txt: damaged\\.img: MFT record ${fixture.records.get('/docs/victim.txt')} at byte ${victim + 510}: update sequence mismatch`,
      ),
    },
    'a bad fixup names the path, the record and the byte',
  );
  await t.rejects(
    tree.lookup('/docs/stale.txt'),
    { name: 'FormatError', message: /^\/docs\/stale\.txt: .*MFT record \d+ is not in use/ },
    'an entry for a freed record',
  );
  await t.rejects(tree.lookup('/docs/broken-attribute.txt'), {
    name: 'FormatError',
    message: new RegExp(
      `^/docs/broken-attribute\\.txt: .*at byte ${firstAttribute + 4}: attribute 0x10 has invalid length`,
    ),
  });
  const docs = await tree.readdir(await tree.lookup('/docs'));
  t.same(
    docs.map((entry) => entry.name).sort(),
    ['broken-attribute.txt', 'secret.txt', 'sibling.txt', 'stale.txt', 'victim.txt'],
    'the directory still lists every name',
  );
  const encrypted = await tree.lookup('/docs/secret.txt');
  t.equal(encrypted.stat.size, 9000, 'an encrypted file has its size');
  await t.rejects(tree.read(encrypted, 0, 100), {
    name: 'UserError',
    message: /^\/docs\/secret\.txt: encrypted \(EFS\) NTFS files cannot be read/,
  });
  const sibling = await tree.lookup('/docs/sibling.txt');
  t.equal((await tree.read(sibling, 0, 9000)).length, 9000, 'a neighbour reads');
  t.same([...(await tree.xattrs(sibling)).keys()], ['user.note']);

  await t.rejects(
    tree.readdir(await tree.lookup('/many')),
    {
      name: 'FormatError',
      message: new RegExp(
        `^/many: damaged\\.img: MFT record ${fixture.records.get('/many')}, index block at VCN 0 at byte ${indexBlock}: magic is "INDY"`,
      ),
    },
    'a bad index block names the directory and the byte',
  );
  await t.rejects(
    tree.lookup('/many/entry-0001'),
    { name: 'FormatError', message: /^\/many: .*index block/ },
    'so does a lookup through it',
  );

  const compressed = await tree.lookup('/compressed/text.txt');
  await t.rejects(tree.read(compressed, 0, 1000), {
    name: 'FormatError',
    message: /^\/compressed\/text\.txt: .*compression unit 0 \(byte 0\): uncompressed chunk/,
  });
  t.equal(
    (await tree.read(await tree.lookup('/links-source'), 0, 100)).toString(),
    'linked\n',
    'the rest of the tree reads',
  );

  const intact = await treeOf(bytes);
  t.equal(
    (await intact.read(await intact.lookup('/docs/victim.txt'), 0, 9000)).length,
    9000,
    'the undamaged volume reads the victim',
  );
  t.equal((await intact.readdir(await intact.lookup('/many'))).length, 600);
});

/** Walk what the damaged volume still shows, reading a little of every file. */
async function walkAll(tree: FileTree, onError: (error: unknown) => void): Promise<number> {
  let visited = 0;
  const seen = new Set<number>();
  const visit = async (node: FileNode, depth: number): Promise<void> => {
    if (depth > 40 || seen.has(node.inode) || visited > 5000) return;
    seen.add(node.inode);
    visited++;
    const attempt = async (action: () => Promise<unknown>): Promise<void> => {
      try {
        await action();
      } catch (error) {
        onError(error);
      }
    };
    await attempt(() => tree.xattrs(node));
    if (node.stat.type === 'file') {
      await attempt(() => tree.read(node, 0, 65536));
      await attempt(() => tree.read(node, Math.max(0, node.stat.size - 4096), 4096));
      await attempt(() => tree.dataRanges!(node));
    }
    if (node.stat.type === 'symlink') await attempt(() => tree.readlink(node));
    if (node.stat.type !== 'directory') return;
    let entries: Awaited<ReturnType<FileTree['readdir']>> = [];
    await attempt(async () => {
      entries = await tree.readdir(node);
    });
    // The ends of a large directory are enough: its index is read whole by readdir.
    const sample = entries.length > 24 ? [...entries.slice(0, 12), ...entries.slice(-12)] : entries;
    for (const entry of sample) {
      await attempt(async () =>
        visit(await tree.lookup(`${node.path === '/' ? '' : node.path}/${entry.name}`), depth + 1),
      );
    }
  };
  await visit(await tree.lookup('/'), 0);
  return visited;
}

t.test('random damage to metadata only ever gives UserErrors', async (t) => {
  const fixture = await buildFixture(t);
  const { bytes } = fixture;
  const prng = new Prng(2026);
  const indexBlock = await firstClusterOf(fixture, '/many', '$INDEX_ALLOCATION');
  const compressedUnit = await firstClusterOf(fixture, '/compressed/text.txt', '$DATA');
  const mftBytes = 100 * fixture.recordSize;
  const regions: Array<[start: number, length: number, weight: number]> = [
    [0, 512, 1],
    [fixture.mftOffset, mftBytes, 14],
    [indexBlock, 4096, 3],
    [compressedUnit, 8192, 2],
  ];
  const totalWeight = regions.reduce((sum, [, , weight]) => sum + weight, 0);
  const unexpected: string[] = [];
  const messages = new Map<string, number>();
  let opened = 0;
  let visitedTotal = 0;
  const iterations = 400;
  for (let iteration = 0; iteration < iterations; iteration++) {
    let pick = prng.next() % totalWeight;
    const region = regions.find(([, , weight]) => {
      pick -= weight;
      return pick < 0;
    })!;
    const saved: Array<[number, number]> = [];
    const flips = 1 + (prng.next() % 12);
    for (let flip = 0; flip < flips; flip++) {
      let offset = region[0] + (prng.next() % region[1]);
      // Mostly leave the fixup tails alone, so that damage gets past the fixup check.
      if (offset % 512 >= 510 && prng.next() % 4 !== 0) offset -= 2;
      saved.push([offset, bytes[offset]!]);
      bytes[offset] = prng.next() & 0xff;
    }
    const onError = (error: unknown): void => {
      if (error instanceof UserError) {
        const kind = error.message
          .replace(/\d+/g, 'N')
          .replace(/^.*?: (?=[a-z])/i, '')
          .slice(0, 60);
        messages.set(kind, (messages.get(kind) ?? 0) + 1);
      } else {
        unexpected.push(
          `iteration ${iteration}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
      }
    };
    try {
      const tree = await treeOf(bytes);
      opened++;
      visitedTotal += await walkAll(tree, onError);
    } catch (error) {
      onError(error);
    }
    for (const [offset, value] of saved.reverse()) bytes[offset] = value;
  }
  t.same(unexpected.slice(0, 5), [], 'no TypeError, RangeError or other crash');
  t.ok(
    opened > iterations / 2,
    `${opened} of ${iterations} damaged volumes opened and were walked (${visitedTotal} nodes)`,
  );
  t.ok(messages.size > 10, `${messages.size} different FormatErrors met`);
  t.comment(
    [...messages]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([message, count]) => `${count} × ${message}`)
      .join('\n'),
  );
});
