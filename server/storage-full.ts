// Recognises "no room left" wherever the repository writes (object files, the catalog's
// SQLite database, keys and reports), so that every layer reports it as one error the
// clients understand (`repository_full`, HTTP 507) instead of an internal error.
import { RepositoryFullError } from '../src/core/errors.js';

/** errno codes of a full filesystem or an exhausted quota, and SQLite's own. */
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

export function isStorageFull(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    if (current instanceof RepositoryFullError) return true;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && FULL_CODES.has(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** `error` as a RepositoryFullError when it means "no space", unchanged otherwise. */
export function asRepositoryFull(error: unknown, what: string): unknown {
  if (error instanceof RepositoryFullError || !isStorageFull(error)) return error;
  const code = (error as { code?: string }).code ?? 'ENOSPC';
  return new RepositoryFullError(`no space left on the repository's storage while ${what} (${code})`, { cause: error });
}
