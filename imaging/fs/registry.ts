// The filesystem modules capture tries on every volume, in order.
import { extFilesystem } from './ext.js';
import type { FilesystemModule } from './filesystem.js';
import { fatFilesystem } from './fat.js';
import { ntfsFilesystem } from './ntfs.js';
import { swapFilesystem } from './swap.js';

export const filesystemModules: FilesystemModule[] = [extFilesystem, ntfsFilesystem, fatFilesystem, swapFilesystem];
