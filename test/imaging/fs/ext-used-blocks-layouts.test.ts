// Used-block maps of the less common ext4 layouts: 32-byte descriptors, meta_bg,
// 1 KiB blocks, bigalloc clusters, and free space left by deleted files.
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { largePattern } from './ext-fixtures.js';
import { checkUsedBlocks, type Variant } from './ext-used-check.js';

const MiB = 1 << 20;

const variants: Variant[] = [
  { name: 'ext4 -O ^64bit', type: 'ext4', size: 1024 * MiB, options: ['-O', '^64bit'] },
  // Small groups so that there are several meta block groups (64 descriptors per block).
  {
    name: 'ext4 -O meta_bg,^resize_inode',
    type: 'ext4',
    size: 1024 * MiB,
    options: ['-O', 'meta_bg,^resize_inode', '-g', '1024'],
  },
  { name: 'ext4 -b 1024', type: 'ext4', size: 256 * MiB, options: ['-b', '1024'] },
  { name: 'ext4 -O bigalloc -C 16384', type: 'ext4', size: 1024 * MiB, options: ['-O', 'bigalloc', '-C', '16384'] },
  {
    name: 'ext4 with files written and then some deleted',
    type: 'ext4',
    size: 1024 * MiB,
    options: [],
    async after(root) {
      await fs.rm(path.join(root, 'dir1'), { recursive: true });
      await fs.rm(path.join(root, 'dir3', 'large.bin'));
      for (let index = 0; index < 20; index += 2) await fs.rm(path.join(root, 'dir4', `small-${index}.txt`));
      await fs.writeFile(path.join(root, 'after-delete.bin'), largePattern(77, 2 * MiB + 5));
    },
  },
];

for (const variant of variants) t.test(variant.name, (t) => checkUsedBlocks(t, variant));
