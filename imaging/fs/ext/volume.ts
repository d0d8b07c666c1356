// What every part of the file reader shares: the volume, its superblock and group
// descriptors, and block reads that refuse block numbers outside the filesystem.
import { FormatError } from '../../../src/core/errors.js';
import type { BlockReader } from '../../block-reader.js';
import type { GroupDescriptors } from './group-descriptors.js';
import type { Superblock } from './superblock.js';

export interface ExtVolume {
  reader: BlockReader;
  superblock: Superblock;
  groups: GroupDescriptors;
}

/** Check that blocks [first, first + count) lie inside the filesystem; `what` names them. */
export function checkBlockRange(volume: ExtVolume, first: number, count: number, what: string): void {
  const { blocksCount, firstDataBlock } = volume.superblock;
  if (!Number.isSafeInteger(first) || first < firstDataBlock || count < 0 || first + count > blocksCount) {
    const last = first + count - 1;
    throw new FormatError(
      `${what} at block ${count > 1 ? `${first}-${last}` : first} is outside the filesystem (blocks ${firstDataBlock}-${blocksCount - 1})`,
    );
  }
}

/** One block, after checking that it exists. */
export async function readBlock(volume: ExtVolume, block: number, what: string): Promise<Buffer> {
  checkBlockRange(volume, block, 1, what);
  const { blockSize } = volume.superblock;
  return volume.reader.read(block * blockSize, blockSize);
}
