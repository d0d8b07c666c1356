// The filesystem modules capture tries on every volume, in order.
import type { FilesystemModule } from './filesystem.js';

export const filesystemModules: FilesystemModule[] = [];
