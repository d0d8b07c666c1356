// Real disks for tests: image files partitioned with sfdisk, attached as loop devices
// with partitions (losetup -P), filesystems made with mkfs and mounted. Everything is
// detached and unmounted when the test ends, even when it fails.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { tempDir } from './tmp.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const MiB = 1 << 20;
export const GiB = 1 << 30;

export async function run(
  command: string,
  args: string[],
  options: { input?: string | Buffer; env?: Record<string, string> } = {},
): Promise<string> {
  const result = await execa(command, args, { input: options.input, env: options.env, stripFinalNewline: true });
  return String(result.stdout);
}

/** A sparse image file of `size` bytes. */
export async function makeImageFile(file: string, size: number): Promise<string> {
  const handle = await fs.open(file, 'w');
  await handle.truncate(size);
  await handle.close();
  return file;
}

/** Partition an image file or device with an sfdisk script (see sfdisk(8), "Input format"). */
export async function sfdisk(device: string, script: string): Promise<void> {
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', device], { input: script });
}

export async function sfdiskDump(device: string): Promise<string> {
  return run('sfdisk', ['--dump', device]);
}

export interface LoopDevice {
  device: string;
  /** The node of partition `number`, e.g. /dev/loop3p2. */
  partition(number: number): string;
  detach(): Promise<void>;
}

/** Attach an image file as a loop device, with partition nodes when it has a table. */
export async function attachLoop(
  t: Teardown,
  image: string,
  options: { readOnly?: boolean; offset?: number; size?: number } = {},
): Promise<LoopDevice> {
  const args = ['--find', '--show', '--partscan'];
  if (options.readOnly) args.push('--read-only');
  if (options.offset !== undefined) args.push('--offset', String(options.offset));
  if (options.size !== undefined) args.push('--sizelimit', String(options.size));
  const device = await run('losetup', [...args, image]);
  let attached = true;
  const loop: LoopDevice = {
    device,
    partition: (number) => `${device}p${number}`,
    async detach() {
      if (!attached) return;
      attached = false;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          await run('losetup', ['--detach', device]);
          return;
        } catch {
          await sleep(100);
        }
      }
    },
  };
  t.teardown(() => loop.detach());
  // No udev here: partition nodes appear only once the kernel is told about them, and
  // can appear a moment late. `partx --add` covers logical partitions too.
  const table = await execa('sfdisk', ['--json', device], { reject: false });
  const nodes =
    table.exitCode === 0
      ? (
          (JSON.parse(String(table.stdout)) as { partitiontable: { partitions?: { node: string }[] } }).partitiontable
            .partitions ?? []
        ).map((entry) => entry.node)
      : [];
  if (nodes.length > 0) {
    await execa('partx', ['--add', device], { reject: false });
    await execa('partx', ['--update', device], { reject: false });
    for (let attempt = 0; attempt < 50; attempt++) {
      const present = await Promise.all(
        nodes.map((node) =>
          fs.access(node).then(
            () => true,
            () => false,
          ),
        ),
      );
      if (present.every(Boolean)) break;
      await sleep(100);
    }
  }
  return loop;
}

/** Mount a filesystem on a new temporary directory; unmounted at teardown. */
export async function mount(
  t: Teardown,
  device: string,
  options: { type?: string; options?: string } = {},
): Promise<{ path: string; unmount(): Promise<void> }> {
  const mountpoint = await tempDir(t, 'b365-mnt-');
  const args: string[] = [];
  if (options.type) args.push('-t', options.type);
  if (options.options) args.push('-o', options.options);
  if (options.type === 'ntfs-3g' || options.type === 'ntfs')
    await run('ntfs-3g', [...(options.options ? ['-o', options.options] : []), device, mountpoint]);
  else await run('mount', [...args, device, mountpoint]);
  let mounted = true;
  const handle = {
    path: mountpoint,
    async unmount() {
      if (!mounted) return;
      mounted = false;
      await run('sync', []);
      for (let attempt = 0; attempt < 20; attempt++) {
        const result = await execa('umount', [mountpoint], { reject: false });
        if (result.exitCode === 0) return;
        await sleep(200);
      }
      await execa('umount', ['-l', mountpoint], { reject: false });
    },
  };
  // Registered after tempDir's removal, so it runs first.
  t.teardown(() => handle.unmount());
  return handle;
}

/** Fill a directory with a small tree of files with known contents. */
export async function writeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [relative, content] of Object.entries(files)) {
    const file = path.join(root, relative);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
}

/** `length` bytes of a file or device at `offset` (zeros past its end). */
export async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, offset);
    return buffer;
  } finally {
    await handle.close();
  }
}
