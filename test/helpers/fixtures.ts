// The disks of the capture and restore tests, built with the real tools: a GPT disk
// (BIOS boot, FAT32 ESP, swap, ext4) and an MBR disk (primary NTFS, extended with two
// logical ext4), filled with files that have modes, owners, times, links and xattrs.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { Prng, textLike } from './content.js';
import { attachLoop, makeImageFile, MiB, mount, run, sfdisk } from './disk.js';
import { tempDir } from './tmp.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const SWAP_UUID = '0b2e1f3a-5c6d-4e7f-8a9b-0c1d2e3f4a5b';
export const BIOS_BOOT = '21686148-6449-6E6F-744E-656564454649';
export const ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
export const LINUX_SWAP = '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F';
export const LINUX_FS = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const FIXED_TIME = new Date('2024-03-05T06:07:08.123Z');

/** A tree with the things restores get wrong: modes, owners, times, symlinks, hard links, xattrs. */
export async function fillPosixTree(
  root: string,
  seed: number,
  options: { files?: number; bigFile?: number; links?: boolean; xattrs?: boolean } = {},
): Promise<void> {
  const prng = new Prng(seed);
  const count = options.files ?? 300;
  for (let index = 0; index < count; index++) {
    const directory = path.join(root, `dir${index % 7}`, `sub${index % 3}`);
    await fs.mkdir(directory, { recursive: true });
    const size = prng.next() % 3 === 0 ? prng.next() % 200_000 : prng.next() % 4000;
    const content = prng.next() % 2 ? textLike(prng, size) : Buffer.alloc(size);
    if (!(prng.next() % 2)) prng.fill(content);
    const file = path.join(directory, `file-${index}.dat`);
    await fs.writeFile(file, content);
    await fs.chmod(file, [0o644, 0o600, 0o755, 0o640, 0o4755][index % 5]!);
    if (options.links !== false) await fs.chown(file, 1000 + (index % 3), 100 + (index % 2));
    await fs.utimes(file, FIXED_TIME, new Date(FIXED_TIME.getTime() - index * 1000));
  }
  if (options.bigFile) {
    const big = Buffer.alloc(options.bigFile);
    prng.fill(big);
    await fs.writeFile(path.join(root, 'big.bin'), big);
  }
  await fs.writeFile(path.join(root, 'ünïcødé name.txt'), 'unicode\n');
  if (options.links !== false) {
    await fs.symlink('dir0/sub0/file-0.dat', path.join(root, 'link-to-file'));
    await fs.symlink('/etc/does-not-exist', path.join(root, 'dangling'));
    await fs.link(path.join(root, 'dir1/sub1/file-1.dat'), path.join(root, 'hardlink-to-file-1'));
    await fs.mkdir(path.join(root, 'private'), { mode: 0o700 });
    await fs.chown(path.join(root, 'private'), 1234, 1234);
  }
  if (options.xattrs) {
    await execa('setfattr', ['-n', 'user.backup365', '-v', 'kept', path.join(root, 'dir0/sub0/file-0.dat')]);
  }
}

export interface TreeEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  sha256: string | null;
  target: string | null;
  /** Paths of the hard-link group (sorted), for files with nlink > 1. */
  links: string | null;
  xattrs: string | null;
}

/** Everything a user would notice about a mounted tree. */
export async function snapshotTree(
  root: string,
  options: { owners?: boolean; xattrs?: boolean } = {},
): Promise<Record<string, TreeEntry>> {
  const entries: Record<string, TreeEntry> = {};
  // One getfattr for the whole tree: "# file: PATH" then "name=value" lines.
  const attributes = new Map<string, string>();
  if (options.xattrs) {
    const dump = await execa('getfattr', ['-R', '-h', '-d', '-m', 'user\\.', '--absolute-names', root], {
      reject: false,
      maxBuffer: 1 << 30,
    });
    for (const block of String(dump.stdout).split('\n\n')) {
      const [header, ...values] = block.split('\n').filter(Boolean);
      if (header?.startsWith('# file: ')) attributes.set(header.slice(8), values.join(';'));
    }
  }
  const inodes = new Map<number, string[]>();
  async function walk(directory: string): Promise<void> {
    for (const name of (await fs.readdir(directory)).sort()) {
      if (name === 'lost+found' && directory === root) continue;
      const full = path.join(directory, name);
      const relative = path.relative(root, full);
      const stats = await fs.lstat(full);
      const type = stats.isDirectory()
        ? 'directory'
        : stats.isSymbolicLink()
          ? 'symlink'
          : stats.isFile()
            ? 'file'
            : 'other';
      entries[relative] = {
        type,
        mode: stats.mode & 0o7777,
        uid: options.owners === false ? 0 : stats.uid,
        gid: options.owners === false ? 0 : stats.gid,
        mtimeMs: type === 'symlink' ? 0 : stats.mtimeMs,
        size: type === 'directory' ? 0 : stats.size,
        sha256:
          type === 'file'
            ? createHash('sha256')
                .update(await fs.readFile(full))
                .digest('hex')
            : null,
        target: type === 'symlink' ? await fs.readlink(full) : null,
        links: null,
        xattrs: options.xattrs && type === 'file' ? (attributes.get(full) ?? '') : null,
      };
      if (type === 'file' && stats.nlink > 1) inodes.set(stats.ino, [...(inodes.get(stats.ino) ?? []), relative]);
      if (type === 'directory') await walk(full);
    }
  }
  await walk(root);
  for (const group of inodes.values()) for (const member of group) entries[member]!.links = group.sort().join('|');
  return entries;
}

/** SHA-256 of every file in a FAT volume, extracted with mtools (the kernel has no vfat here). */
export async function snapshotFat(image: string, offset: number): Promise<Record<string, string>> {
  const out = await tempDir({ teardown: () => undefined }, 'b365-fat-');
  try {
    await execa('mcopy', ['-s', '-n', '-m', '-i', `${image}@@${offset}`, '::/*', out], {
      env: { MTOOLS_SKIP_CHECK: '1', TZ: 'UTC' },
    });
    const result: Record<string, string> = {};
    async function walk(directory: string): Promise<void> {
      for (const name of (await fs.readdir(directory)).sort()) {
        const full = path.join(directory, name);
        const stats = await fs.stat(full);
        if (stats.isDirectory()) await walk(full);
        else
          result[path.relative(out, full)] = `${createHash('sha256')
            .update(await fs.readFile(full))
            .digest('hex')} ${stats.mtimeMs}`;
      }
    }
    await walk(out);
    return result;
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
}

export interface GptDisk {
  image: string;
  size: number;
  espOffset: number;
}

/** GPT: BIOS boot 1 MiB, ESP (FAT32) 64 MiB, swap 32 MiB, ext4 on the rest, filled. */
export async function buildGptDisk(t: Teardown, directory: string, size = 384 * MiB): Promise<GptDisk> {
  const image = path.join(directory, 'gpt-disk.img');
  await makeImageFile(image, size);
  await sfdisk(
    image,
    `label: gpt
label-id: 5A1B2C3D-0000-4000-8000-00000000ABCD
size=1MiB, type=${BIOS_BOOT}, name="bios"
size=64MiB, type=${ESP}, name="EFI system"
size=32MiB, type=${LINUX_SWAP}, name="swap"
type=${LINUX_FS}, name="root", attrs="LegacyBIOSBootable"
`,
  );
  // The BIOS boot partition holds boot loader code: put something recognisable there.
  const handle = await fs.open(image, 'r+');
  await handle.write(Buffer.from('GRUB core image stand-in '.repeat(1000)), 0, undefined, 1 * MiB);
  await handle.close();
  const loop = await attachLoop(t, image);
  await run('mkfs.vfat', ['-F', '32', '-n', 'ESP', '-i', 'A1B2C3D4', loop.partition(2)]);
  await run('mkswap', ['-U', SWAP_UUID, '-L', 'swap0', loop.partition(3)]);
  await run('mkfs.ext4', ['-q', '-L', 'root', '-U', '11111111-2222-4333-8444-555555555555', loop.partition(4)]);
  const root = await mount(t, loop.partition(4));
  await fillPosixTree(root.path, 1, { bigFile: 40 * MiB, xattrs: true });
  await fs.mkdir(path.join(root.path, 'etc'), { recursive: true });
  await fs.writeFile(
    path.join(root.path, 'etc', 'fstab'),
    `# a restored root names its filesystems
UUID=11111111-2222-4333-8444-555555555555 / ext4 defaults 0 1
UUID=A1B2-C3D4 /boot/efi vfat umask=0077 0 1
UUID=${SWAP_UUID} none swap sw 0 0
`,
  );
  await root.unmount();
  await loop.detach();
  const espOffset = 2 * MiB;
  const esp = path.join(directory, 'esp-content');
  await fillPosixTree(esp, 2, { files: 60, links: false });
  await execa(
    'mcopy',
    ['-s', '-m', '-i', `${image}@@${espOffset}`, path.join(esp, 'dir0'), path.join(esp, 'ünïcødé name.txt'), '::/'],
    { env: { MTOOLS_SKIP_CHECK: '1', TZ: 'UTC' } },
  );
  await fs.rm(esp, { recursive: true, force: true });
  return { image, size, espOffset };
}

export interface MbrDisk {
  image: string;
  size: number;
}

/** MBR: primary NTFS 96 MiB, extended holding two logical ext4 partitions. */
export async function buildMbrDisk(t: Teardown, directory: string, size = 320 * MiB): Promise<MbrDisk> {
  const image = path.join(directory, 'mbr-disk.img');
  await makeImageFile(image, size);
  await sfdisk(
    image,
    `label: dos
label-id: 0x5eedbeef
${image}1 : size=96MiB, type=7, bootable
${image}2 : type=5
${image}5 : size=100MiB, type=83
${image}6 : type=83
`,
  );
  const loop = await attachLoop(t, image);
  await run('mkntfs', ['-Q', '-F', '-L', 'WINDATA', loop.partition(1)]);
  await run('mkfs.ext4', ['-q', '-L', 'home', loop.partition(5)]);
  await run('mkfs.ext4', ['-q', '-L', 'data', '-O', '^metadata_csum,uninit_bg', loop.partition(6)]);
  const ntfs = await mount(t, loop.partition(1), { type: 'ntfs-3g' });
  await fillPosixTree(ntfs.path, 3, { files: 150, links: false, bigFile: 8 * MiB });
  await ntfs.unmount();
  for (const [number, seed] of [
    [5, 4],
    [6, 5],
  ] as const) {
    const mounted = await mount(t, loop.partition(number));
    await fillPosixTree(mounted.path, seed, { files: 200 });
    await mounted.unmount();
  }
  await loop.detach();
  return { image, size };
}

/** `sfdisk --dump` with the device names taken out, so two disks compare. */
export async function tableDump(device: string): Promise<string> {
  const dump = await run('sfdisk', ['--dump', device]);
  return dump
    .split('\n')
    .filter((line) => !line.startsWith('device:'))
    .map((line) => line.replace(new RegExp(`^${device.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}p?`), 'P'))
    .join('\n');
}
