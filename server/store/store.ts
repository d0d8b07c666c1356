// The narrow interface every repository backend implements (local directory now,
// S3-compatible object storage later): put, get, stat, list, touch, remove by key.
// Keys are slash-separated paths; the layout below is the repository's on-disk format.

export interface ObjectStat {
  key: string;
  size: number;
  mtimeMs: number;
}

export interface PutResult {
  /** False when `ifAbsent` was asked and the object already existed (it was only touched). */
  created: boolean;
}

export interface ObjectStore {
  readonly description: string;
  /** Write atomically: nothing half-written is ever visible under `key`. */
  put(key: string, bytes: Buffer, options?: { ifAbsent?: boolean }): Promise<PutResult>;
  get(key: string): Promise<Buffer>;
  /** Null when absent. */
  stat(key: string): Promise<ObjectStat | null>;
  /** Every object whose key starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<ObjectStat>;
  /** Mark as recently used (garbage collection's grace period reads this). */
  touch(key: string, when?: Date): Promise<void>;
  remove(key: string): Promise<void>;
  /** Move within the store (quarantine). */
  move(fromKey: string, toKey: string): Promise<void>;
  /** Bytes free on the backing storage, when the backend knows. */
  freeBytes(): Promise<number | null>;
}

/**
 * The repository's layout (DESIGN.md decision 6). Every key is built, parsed and listed
 * through these helpers only, so the layout is stated once. Indexes are stored as
 * chunks are, under their digest.
 */
export const CHUNKS_PREFIX = 'chunks/';
export const IMAGES_PREFIX = 'images/';
export const REPORTS_PREFIX = 'reports/';
export const QUARANTINE_PREFIX = 'quarantine/';

/** Where a chunk or an index is stored: fanned out by its first two bytes. */
export function chunkKey(digest: string): string {
  return `${CHUNKS_PREFIX}${digest.slice(0, 2)}/${digest.slice(2, 4)}/${digest}`;
}

/** The digest a stored object's key names, or null for any other key. */
export function digestOfChunkKey(key: string): string | null {
  const match = /^chunks\/[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(key);
  return match ? match[1]! : null;
}

function imageDirectory(machine: string, timestamp: string): string {
  return `${IMAGES_PREFIX}${machine}/${timestamp}`;
}

export function manifestKey(machine: string, timestamp: string): string {
  return `${imageDirectory(machine, timestamp)}/manifest.json`;
}

export function parseManifestKey(key: string): { machine: string; timestamp: string } | null {
  const match = /^images\/([^/]+)\/([^/]+)\/manifest\.json$/.exec(key);
  return match ? { machine: match[1]!, timestamp: match[2]! } : null;
}

/** An image's recorded state (ok, failed and why), kept beside its manifest so a reindex keeps it. */
export function imageStateKey(machine: string, timestamp: string): string {
  return `${imageDirectory(machine, timestamp)}/state.json`;
}

export function quarantineKey(digest: string): string {
  return `${QUARANTINE_PREFIX}${digest}`;
}

/** A signed verification report, named by its job's id. */
export function reportKey(id: string): string {
  return `${REPORTS_PREFIX}${id}.json`;
}
