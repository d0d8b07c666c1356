// Paths inside a volume, as users give them: normalised to '/a/b', and refused when
// they could reach outside the volume's root ('..'), or carry a NUL byte.
import { UsageError } from '../../src/core/errors.js';

export function normalizeVolumePath(text: string): string {
  if (text.includes('\0')) throw new UsageError(`path ${JSON.stringify(text)} contains a NUL byte`);
  const parts = text.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..'))
    throw new UsageError(`path ${JSON.stringify(text)} contains "..": give a path from the volume's root`);
  return `/${parts.join('/')}`;
}

/** A single directory entry name is safe to create: no separators, not '.' or '..'. */
export function isSafeName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

export function joinVolumePath(directory: string, name: string): string {
  return directory === '/' ? `/${name}` : `${directory}/${name}`;
}
