// What capture keeps of a volume, rebuilt as a file: only the given byte ranges of the
// source, zeros elsewhere. The field's own checkers (fsck, ntfsfix, a mount) then judge
// whether the ranges are enough to restore the volume.
import fs from 'node:fs/promises';
import { writeFully } from '../../imaging/device.js';
import type { RangeList } from '../../imaging/ranges.js';
import { makeImageFile } from './disk.js';

/** Write only `ranges` of `source` into a new all-zero (sparse) file of the same size. */
export async function copyRanges(source: string, target: string, ranges: RangeList): Promise<void> {
  await makeImageFile(target, (await fs.stat(source)).size);
  const input = await fs.open(source, 'r');
  const output = await fs.open(target, 'r+');
  try {
    const copyBuffer = Buffer.allocUnsafe(8 << 20);
    for (const [start, end] of ranges.ranges) {
      for (let position = start; position < end; position += copyBuffer.length) {
        const length = Math.min(copyBuffer.length, end - position);
        const { bytesRead } = await input.read(copyBuffer, 0, length, position);
        await writeFully(output, copyBuffer.subarray(0, bytesRead), position, target);
      }
    }
  } finally {
    await input.close();
    await output.close();
  }
}
