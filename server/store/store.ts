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

export function chunkKey(digest: string): string {
  return `chunks/${digest.slice(0, 2)}/${digest.slice(2, 4)}/${digest}`;
}

export function digestOfChunkKey(key: string): string | null {
  const match = /^chunks\/[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(key);
  return match ? match[1]! : null;
}

export function manifestKey(machine: string, timestamp: string): string {
  return `images/${machine}/${timestamp}/manifest.json`;
}

export function parseManifestKey(key: string): { machine: string; timestamp: string } | null {
  const match = /^images\/([^/]+)\/([^/]+)\/manifest\.json$/.exec(key);
  return match ? { machine: match[1]!, timestamp: match[2]! } : null;
}

export function quarantineKey(digest: string): string {
  return `quarantine/${digest}`;
}
