// Used-block maps where the superblock and descriptor copies sit elsewhere: sparse_super2
// (two backups only), no sparse_super (a copy in every group), and 1 KiB-block bigalloc
// with meta_bg (group 0 starts at block 0, the superblock is block 1).
import t from 'tap';
import { checkUsedBlocks, type Variant } from './ext-used-check.js';

const MiB = 1 << 20;

const variants: Variant[] = [
  { name: 'ext4 -O sparse_super2', type: 'ext4', size: 512 * MiB, options: ['-O', 'sparse_super2'] },
  {
    name: 'ext4 -O ^sparse_super,^resize_inode',
    type: 'ext4',
    size: 512 * MiB,
    options: ['-O', '^sparse_super,^resize_inode'],
  },
  {
    name: 'ext4 -b 1024 -O bigalloc,meta_bg,^resize_inode -C 8192 -g 2048',
    type: 'ext4',
    size: 256 * MiB,
    options: ['-b', '1024', '-O', 'bigalloc,meta_bg,^resize_inode', '-C', '8192', '-g', '2048'],
  },
];

for (const variant of variants) t.test(variant.name, (t) => checkUsedBlocks(t, variant));
