// The filesystem modules capture tries on every volume, in order.
import type { FilesystemModule } from './filesystem.js';
import { fatFilesystem } from './fat.js';
import { swapFilesystem } from './swap.js';

export const filesystemModules: FilesystemModule[] = [fatFilesystem, swapFilesystem];
