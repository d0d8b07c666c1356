// What an extraction did: counts of what it wrote and of what it found already there,
// and what it could not restore, grouped by what went wrong (each message once, with
// how many paths it hit and the first of them, in the order first met).

export interface NotRestored {
  what: string;
  count: number;
  example: string;
}

export interface ExtractReport {
  /** Directories created (those already there are merged into, not counted). */
  directories: number;
  files: number;
  symlinks: number;
  hardLinks: number;
  special: number;
  bytes: number;
  /** Paths that existed in the target and were left as they were (`--overwrite never`). */
  kept: number;
  /** Paths that existed with the same size and mtime (or link target) and were not rewritten (`--overwrite if-changed`). */
  unchanged: number;
  /** Paths that existed and were replaced by the image's. */
  replaced: number;
  /** What could not be restored, grouped: message → count (and a first example). */
  notRestored: NotRestored[];
}

export function emptyReport(): ExtractReport {
  return {
    directories: 0,
    files: 0,
    symlinks: 0,
    hardLinks: 0,
    special: 0,
    bytes: 0,
    kept: 0,
    unchanged: 0,
    replaced: 0,
    notRestored: [],
  };
}

export class ProblemList {
  private readonly problems = new Map<string, { count: number; example: string }>();

  note(what: string, example: string): void {
    const entry = this.problems.get(what);
    if (entry) entry.count++;
    else this.problems.set(what, { count: 1, example });
  }

  list(): NotRestored[] {
    return [...this.problems].map(([what, { count, example }]) => ({ what, count, example }));
  }
}
