// The target of a restore as a disk to write: an image file is created when missing, and
// on a block device runs of zeros are discarded (zeroout) rather than written.
import fs from 'node:fs/promises';
import { execa } from 'execa';
import { NotFoundError } from '../../src/core/errors.js';
import type { Disk } from '../../src/format/manifest.js';
import { describeDevice, writeFully, type DeviceInfo } from '../device.js';

/** Open the target for writing; an image file is created, or emptied to a sparse file of the right size. */
export async function openTarget(target: string, disk: Disk): Promise<{ device: DeviceInfo; fresh: boolean }> {
  try {
    return { device: await describeDevice(target), fresh: false };
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  const handle = await fs.open(target, 'wx', 0o600);
  await handle.truncate(disk.size);
  await handle.close();
  return { device: await describeDevice(target), fresh: true };
}

/** Zeroes a range of a block device, by zeroout where the device offers it; nothing for a file (its holes read as zeros). */
export function zeroRangeOf(
  target: DeviceInfo,
  handle: fs.FileHandle,
): ((offset: number, length: number) => Promise<void>) | undefined {
  if (target.kind !== 'block-device') return undefined;
  return async (offset, length) => {
    // --force: this process holds the device exclusively, blkdiscard would find it busy.
    const result = await execa(
      'blkdiscard',
      ['--force', '--zeroout', '--offset', String(offset), '--length', String(length), target.path],
      { reject: false },
    );
    if (result.exitCode === 0) return;
    const zeros = Buffer.alloc(Math.min(length, 8 << 20));
    for (let done = 0; done < length; done += zeros.length)
      await writeFully(handle, zeros.subarray(0, Math.min(zeros.length, length - done)), offset + done, target.path);
  };
}
