// Used-block maps of ext2, ext3 and ext4 with its common feature sets, proven against
// dumpe2fs and by restoring only the used ranges (e2fsck clean, every file intact).
import t from 'tap';
import { checkUsedBlocks, type Variant } from './ext-used-check.js';

const MiB = 1 << 20;

const variants: Variant[] = [
  { name: 'ext2', type: 'ext2', size: 512 * MiB, options: [] },
  { name: 'ext3', type: 'ext3', size: 512 * MiB, options: [] },
  { name: 'ext4 default (flex_bg, metadata_csum, 64bit)', type: 'ext4', size: 1024 * MiB, options: [] },
  { name: 'ext4 -O ^flex_bg', type: 'ext4', size: 1024 * MiB, options: ['-O', '^flex_bg'] },
  {
    name: 'ext4 -O ^metadata_csum,uninit_bg',
    type: 'ext4',
    size: 1024 * MiB,
    options: ['-O', '^metadata_csum,uninit_bg'],
  },
];

for (const variant of variants) t.test(variant.name, (t) => checkUsedBlocks(t, variant));
