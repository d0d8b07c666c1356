// A window of a disk or image file as its own block device (losetup with an offset),
// for the field's tools that want a device: fsck, resize2fs, ntfsresize, mkswap.
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { UserError } from '../src/core/errors.js';

export interface LoopWindow {
  device: string;
  detach(): Promise<void>;
}

export async function attachWindow(
  file: string,
  offset: number,
  size: number,
  options: { readOnly?: boolean } = {},
): Promise<LoopWindow> {
  const args = ['--find', '--show', '--offset', String(offset), '--sizelimit', String(size)];
  if (options.readOnly) args.push('--read-only');
  const result = await execa('losetup', [...args, file], { reject: false });
  if (result.exitCode !== 0)
    throw new UserError(`cannot attach ${file} at byte ${offset} as a loop device: ${String(result.stderr).trim()}`);
  const device = String(result.stdout).trim();
  let attached = true;
  return {
    device,
    async detach() {
      if (!attached) return;
      attached = false;
      for (let attempt = 0; attempt < 20; attempt++) {
        if ((await execa('losetup', ['--detach', device], { reject: false })).exitCode === 0) return;
        await sleep(100);
      }
    },
  };
}

export async function withWindow<T>(
  file: string,
  offset: number,
  size: number,
  options: { readOnly?: boolean },
  use: (device: string) => Promise<T>,
): Promise<T> {
  const window = await attachWindow(file, offset, size, options);
  try {
    return await use(window.device);
  } finally {
    await window.detach();
  }
}
