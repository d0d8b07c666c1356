// The disk the disk, restore and chunk-size benchmarks share: a 4 GiB GPT disk (ESP,
// swap, ext4 about half full of real and generated files) built with the real tools,
// and the same disk after one scripted day of use. Both are cached under
// var/cache/bench/<version>/ so that later runs skip building them.
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Prng, mixedContent, textLike } from '../test/helpers/content.js';
import { attachLoop, makeImageFile, mount, sfdisk } from '../test/helpers/disk.js';
import { ESP, LINUX_FS, LINUX_SWAP } from '../test/helpers/fixtures.js';

/** Bump when anything below changes what the disks hold. */
export const BENCH_DISK_VERSION = 'gpt-4g-v1';

const MiB = 1 << 20;
const GiB = 1 << 30;
export const BENCH_DISK_SIZE = 4 * GiB;
const USR_BUDGET = 1000 * MiB;
const TEXT_BUDGET = 160 * MiB;
const RANDOM_BUDGET = 220 * MiB;
const SWAP_STALE = 64 * MiB;

export interface BenchDisk {
  /** The disk as built. */
  before: string;
  /** The same disk after the scripted day of changes. */
  after: string;
  /** What the build and the day did, for the report. */
  facts: DiskFacts;
}

export interface DiskFacts {
  version: string;
  ext4UsedBytes: number;
  ext4SizeBytes: number;
  espUsedBytes: number;
  usrBytes: number;
  usrFiles: number;
  textBytes: number;
  randomBytes: number;
  duplicateBytes: number;
  day: {
    editedInPlaceBytes: number;
    newBytes: number;
    deletedBytes: number;
    replacedBytes: number;
    smallFiles: number;
  };
}

interface Scope {
  teardown(fn: () => unknown): void;
}

/** A local scope: builders attach loops and mount, and everything is undone at the end. */
class BuildScope implements Scope {
  private readonly cleanups: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.cleanups.push(fn);
  }
  async close(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
    this.cleanups.length = 0;
  }
}

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where benchmark inputs are kept between runs (gitignored). */
export function benchCacheRoot(): string {
  return process.env.B365_BENCH_CACHE ?? path.join(REPO_ROOT, 'var', 'cache', 'bench');
}

export function cacheDirectory(): string {
  return path.join(benchCacheRoot(), BENCH_DISK_VERSION);
}

/** The cached disks, built first when the cache lacks them. */
export async function benchDisk(log: (line: string) => void = () => undefined): Promise<BenchDisk> {
  const directory = cacheDirectory();
  const factsFile = path.join(directory, 'facts.json');
  const ready = await fs.readFile(factsFile, 'utf8').then(
    (text) => JSON.parse(text) as DiskFacts,
    () => null,
  );
  if (ready)
    return { before: path.join(directory, 'before.img'), after: path.join(directory, 'after.img'), facts: ready };

  // Build next to the cache and rename into place, so a half-built disk is never taken.
  const partial = `${directory}.partial-${process.pid}`;
  await fs.rm(partial, { recursive: true, force: true });
  await fs.mkdir(partial, { recursive: true });
  const started = Date.now();
  log(`building the benchmark disk ${BENCH_DISK_VERSION} in ${partial} (cached for later runs)`);
  const scope = new BuildScope();
  try {
    const before = path.join(partial, 'before.img');
    const after = path.join(partial, 'after.img');
    const built = await buildDisk(scope, before);
    await scope.close();
    await execa('cp', ['--sparse=always', before, after]);
    const day = await applyDayOfChanges(scope, after);
    await scope.close();
    const facts: DiskFacts = { version: BENCH_DISK_VERSION, ...built, day };
    await fs.writeFile(path.join(partial, 'facts.json'), `${JSON.stringify(facts, null, 2)}\n`);
    await fs.rm(directory, { recursive: true, force: true });
    await fs.rename(partial, directory);
    log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return { before: path.join(directory, 'before.img'), after: path.join(directory, 'after.img'), facts };
  } catch (error) {
    await scope.close();
    await fs.rm(partial, { recursive: true, force: true });
    throw error;
  }
}

/** Incompressible bytes that are the same on every run: AES-CTR over zeros. */
class RandomStream {
  private readonly cipher;
  constructor(seed: number) {
    const key = createHash('sha256').update(`bench-random-${seed}`).digest().subarray(0, 16);
    this.cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  }
  bytes(length: number): Buffer {
    return this.cipher.update(Buffer.alloc(length));
  }
}

/** A size spread like real files: mostly small, a few large (log-uniform between bounds). */
function fileSize(prng: Prng, smallest: number, largest: number): number {
  const fraction = prng.next() / 0x1_0000_0000;
  return Math.round(smallest * (largest / smallest) ** fraction);
}

async function writeFile(file: string, bytes: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, bytes);
}

/** Regular files under `roots`, in a stable order, up to `budget` bytes of distinct inodes. */
async function pickUsrFiles(roots: string[], budget: number): Promise<{ files: string[]; bytes: number }> {
  const files: string[] = [];
  const inodes = new Set<string>();
  let bytes = 0;
  for (const root of roots) {
    const listing = await execa('find', [root, '-xdev', '-type', 'f', '-printf', '%s %i %p\\n'], {
      reject: false,
      maxBuffer: 1 << 28,
    });
    const entries = String(listing.stdout)
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [size, inode] = line.split(' ', 2);
        return { size: Number(size), inode: inode!, file: line.slice(size!.length + inode!.length + 2) };
      })
      .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
    for (const entry of entries) {
      // Hard links are copied as links (tar keeps them), so they cost nothing more.
      const cost = inodes.has(entry.inode) ? 0 : entry.size;
      if (bytes + cost > budget) return { files, bytes };
      inodes.add(entry.inode);
      files.push(entry.file);
      bytes += cost;
    }
  }
  return { files, bytes };
}

async function buildDisk(scope: Scope, image: string): Promise<Omit<DiskFacts, 'version' | 'day'>> {
  await makeImageFile(image, BENCH_DISK_SIZE);
  await sfdisk(
    image,
    [
      'label: gpt',
      'label-id: 6B3E2A10-7C1D-4E2F-9A3B-5C6D7E8F9012',
      'first-lba: 2048',
      `start=2048, size=${(256 * MiB) / 512}, type=${ESP}, uuid=1A2B3C4D-0001-4000-8000-000000000001, name="EFI System"`,
      `size=${(512 * MiB) / 512}, type=${LINUX_SWAP}, uuid=1A2B3C4D-0002-4000-8000-000000000002, name="swap"`,
      `type=${LINUX_FS}, uuid=1A2B3C4D-0003-4000-8000-000000000003, name="root"`,
      '',
    ].join('\n'),
  );
  const loop = await attachLoop(scope, image);

  // Swap that has been used: stale pages past the header, as on a machine that swapped once.
  const stale = mixedContent(new Prng(7001), SWAP_STALE);
  const swapHandle = await fs.open(loop.partition(2), 'r+');
  await swapHandle.write(stale, 0, stale.length, 64 * MiB);
  await swapHandle.close();
  await execa('mkswap', ['-U', '0b2e1f3a-5c6d-4e7f-8a9b-0c1d2e3f4a5b', '-L', 'swap', loop.partition(2)]);

  await execa('mkfs.vfat', ['-F', '32', '-n', 'ESP', '-i', '1234ABCD', loop.partition(1)]);
  await execa('mkfs.ext4', [
    '-q',
    '-F',
    '-L',
    'root',
    '-U',
    '3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b',
    '-E',
    'lazy_itable_init=0,lazy_journal_init=0',
    loop.partition(3),
  ]);

  // ESP: GRUB's EFI modules and a kernel and initrd (compressed, so incompressible).
  const esp = await fs.mkdtemp(path.join(path.dirname(image), 'esp-'));
  const random = new RandomStream(1);
  await writeFile(path.join(esp, 'EFI/debian/vmlinuz-6.1.0-bench'), random.bytes(8 * MiB));
  await writeFile(path.join(esp, 'EFI/debian/initrd.img-6.1.0-bench'), random.bytes(36 * MiB));
  await writeFile(path.join(esp, 'EFI/debian/grub.cfg'), textLike(new Prng(3), 6000));
  const grubModules = '/usr/lib/grub/x86_64-efi';
  const hasGrub = await fs.access(grubModules).then(
    () => true,
    () => false,
  );
  if (hasGrub) await execa('cp', ['-r', grubModules, path.join(esp, 'EFI/debian/modules')]);
  const mtools = { env: { MTOOLS_SKIP_CHECK: '1' } };
  await execa('mcopy', ['-s', '-i', loop.partition(1), path.join(esp, 'EFI'), '::/'], mtools);
  await fs.rm(esp, { recursive: true, force: true });

  const root = await mount(scope, loop.partition(3));
  // Real files: a slice of this machine's /usr, as a system would hold.
  const usr = await pickUsrFiles(
    ['/usr/include', '/usr/bin', '/usr/sbin', '/usr/lib/python3.11', '/usr/share/doc', '/usr/lib/x86_64-linux-gnu'],
    USR_BUDGET,
  );
  const list = path.join(path.dirname(image), 'usr-files.txt');
  await fs.writeFile(list, usr.files.join('\n'));
  await execa('sh', ['-c', `tar -cf - --no-recursion -P -T ${list} 2>/dev/null | tar -xpf - -C ${root.path}`]);
  await fs.rm(list, { force: true });

  // Documents and logs: text-like, many files, mostly small.
  const prng = new Prng(2024);
  let textBytes = 0;
  for (let index = 0; textBytes < TEXT_BUDGET; index++) {
    const size = fileSize(prng, 1024, 2 * MiB);
    const kind = ['documents', 'mail', 'notes', 'logs'][index % 4]!;
    await writeFile(
      path.join(root.path, 'home/user', kind, `d${index % 23}`, `${kind}-${index}.txt`),
      textLike(prng, size),
    );
    textBytes += size;
  }
  // Photos, archives, videos: incompressible.
  let randomBytes = 0;
  const photos: string[] = [];
  for (let index = 0; randomBytes < RANDOM_BUDGET; index++) {
    const size = fileSize(prng, 200 << 10, 24 * MiB);
    const file = path.join(root.path, 'home/user/media', `album${index % 9}`, `img_${1000 + index}.jpg`);
    await writeFile(file, random.bytes(size));
    photos.push(file);
    randomBytes += size;
  }
  // A database and a VM disk that the day edits in place: pages of mixed content.
  await writeFile(path.join(root.path, 'var/lib/app/app.db'), mixedContent(new Prng(11), 64 * MiB));
  await writeFile(path.join(root.path, 'home/user/vm/disk.qcow2'), mixedContent(new Prng(12), 48 * MiB));
  // Duplicates: a copied source tree and a second copy of some photos.
  await execa('cp', ['-a', path.join(root.path, 'usr/include'), path.join(root.path, 'home/user/backup-include')]);
  let duplicateBytes = Number(
    (await execa('du', ['-sb', path.join(root.path, 'home/user/backup-include')])).stdout.split('\t')[0],
  );
  for (const photo of photos.filter((_, index) => index % 7 === 0)) {
    const copy = path.join(root.path, 'home/user/photo-backup', path.basename(photo));
    await fs.mkdir(path.dirname(copy), { recursive: true });
    await fs.copyFile(photo, copy);
    duplicateBytes += (await fs.stat(copy)).size;
  }
  await execa('sync', ['-f', root.path]);
  const usage = await fs.statfs(root.path);
  const ext4SizeBytes = usage.blocks * usage.bsize;
  const ext4UsedBytes = (usage.blocks - usage.bfree) * usage.bsize;
  await root.unmount();
  await execa('e2fsck', ['-fn', loop.partition(3)]);
  const espListing = await execa('mdir', ['-i', loop.partition(1), '::'], mtools);
  const espFree = /([\d ]+) bytes free/.exec(String(espListing.stdout));
  const espUsedBytes = espFree ? 256 * MiB - Number(espFree[1]!.replace(/\s/g, '')) : 0;
  await loop.detach();
  return {
    ext4UsedBytes,
    ext4SizeBytes,
    espUsedBytes,
    usrBytes: usr.bytes,
    usrFiles: usr.files.length,
    textBytes,
    randomBytes,
    duplicateBytes,
  };
}

/** Files under a directory, sorted, with sizes. */
async function listFiles(root: string): Promise<{ file: string; size: number }[]> {
  const listing = await execa('find', [root, '-type', 'f', '-printf', '%s %p\\n'], { maxBuffer: 1 << 28 });
  return String(listing.stdout)
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const space = line.indexOf(' ');
      return { size: Number(line.slice(0, space)), file: line.slice(space + 1) };
    })
    .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/**
 * One day of use, the same every time: database pages and a VM disk rewritten in place,
 * documents edited and logs appended, a package update (files replaced by new ones),
 * new downloads and documents, a mail spool of small files, a few deletions. Sized
 * like the measured day in the project notes (about 19 MiB edited in place, 40 MiB new,
 * 3 MiB deleted), then a clean unmount.
 */
async function applyDayOfChanges(scope: Scope, image: string): Promise<DiskFacts['day']> {
  const loop = await attachLoop(scope, image);
  const root = await mount(scope, loop.partition(3));
  const prng = new Prng(365);
  const random = new RandomStream(365);
  const day = { editedInPlaceBytes: 0, newBytes: 0, deletedBytes: 0, replacedBytes: 0, smallFiles: 0 };

  async function overwrite(file: string, offset: number, bytes: Buffer): Promise<void> {
    const handle = await fs.open(file, 'r+');
    try {
      await handle.write(bytes, 0, bytes.length, offset);
    } finally {
      await handle.close();
    }
    day.editedInPlaceBytes += bytes.length;
  }

  // Database: 2500 random 4 KiB pages; VM disk: 600 random 4 KiB blocks and a few 64 KiB runs.
  const database = path.join(root.path, 'var/lib/app/app.db');
  for (let page = 0; page < 2500; page++)
    await overwrite(database, (prng.next() % ((64 * MiB) / 4096)) * 4096, mixedContent(prng, 4096));
  const vm = path.join(root.path, 'home/user/vm/disk.qcow2');
  for (let block = 0; block < 600; block++)
    await overwrite(vm, (prng.next() % ((48 * MiB) / 4096)) * 4096, mixedContent(prng, 4096));
  for (let run = 0; run < 20; run++)
    await overwrite(vm, (prng.next() % ((48 * MiB) / 65536)) * 65536, random.bytes(65536));

  // Documents edited in place, logs appended to.
  const documents = (await listFiles(path.join(root.path, 'home/user'))).filter((entry) => entry.file.endsWith('.txt'));
  const edited = documents.filter((entry) => entry.size > 64 << 10);
  for (let count = 0; count < 60; count++) {
    const entry = edited[prng.next() % edited.length]!;
    const length =
      Math.min(entry.size, 16 << 10) + (prng.next() % Math.max(1, Math.min(entry.size - (16 << 10), 112 << 10)));
    const offset = prng.next() % Math.max(1, entry.size - length);
    await overwrite(entry.file, offset, textLike(prng, length));
  }
  const logs = documents.filter((entry) => entry.file.includes('/logs/'));
  for (let count = 0; count < 30; count++) {
    const entry = logs[prng.next() % logs.length]!;
    const line = textLike(prng, (16 << 10) + (prng.next() % (64 << 10)));
    await fs.appendFile(entry.file, line);
    day.newBytes += line.length;
  }

  // A package update: binaries and libraries replaced by new versions (new file, rename).
  const usrFiles = (await listFiles(path.join(root.path, 'usr/lib'))).filter(
    (entry) => entry.size > 100 << 10 && entry.size < 2 * MiB,
  );
  for (let count = 0; count < 24; count++) {
    const entry = usrFiles[prng.next() % usrFiles.length]!;
    const bytes = await fs.readFile(entry.file);
    for (let patch = 0; patch < 8; patch++) random.bytes(64).copy(bytes, prng.next() % Math.max(1, bytes.length - 64));
    await fs.writeFile(`${entry.file}.dpkg-new`, bytes);
    await fs.rename(`${entry.file}.dpkg-new`, entry.file);
    day.replacedBytes += bytes.length;
  }

  // New files: downloads (incompressible), documents, and a mail spool of small files.
  for (let count = 0; count < 6; count++) {
    const bytes = random.bytes(5 * MiB + (prng.next() % MiB));
    await writeFile(path.join(root.path, 'home/user/Downloads', `download-${count}.zip`), bytes);
    day.newBytes += bytes.length;
  }
  for (let count = 0; count < 30; count++) {
    const bytes = textLike(prng, fileSize(prng, 4 << 10, 1 * MiB));
    await writeFile(path.join(root.path, 'home/user/documents/today', `new-${count}.txt`), bytes);
    day.newBytes += bytes.length;
  }
  for (let count = 0; count < 500; count++) {
    const bytes = textLike(prng, 1024 + (prng.next() % 7168));
    await writeFile(path.join(root.path, 'home/user/mail/new', `msg-${count}.eml`), bytes);
    day.newBytes += bytes.length;
    day.smallFiles++;
  }

  // Deletions: some documents and a few photos, about 3 MiB.
  for (const entry of documents.filter((candidate) => candidate.file.includes('/notes/')).slice(0, 200)) {
    if (day.deletedBytes > 3 * MiB) break;
    await fs.rm(entry.file);
    day.deletedBytes += entry.size;
  }

  await root.unmount();
  await execa('e2fsck', ['-fn', loop.partition(3)]);
  await loop.detach();
  return day;
}
