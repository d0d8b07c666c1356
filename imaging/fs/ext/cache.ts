// A bounded least-recently-used map for parsed metadata (inode-table blocks, inodes,
// block maps, directories), so a walk of a large tree reads each block once or so.

export class LruCache<K, V> {
  // Two generations instead of one reordered Map: deleting and re-inserting on every hit
  // is slow in V8 for maps of thousands of entries. Hits are kept in (or moved to) the
  // recent generation; when it is full, it becomes the older one and the oldest is dropped.
  private recent = new Map<K, V>();
  private older = new Map<K, V>();
  private readonly generationSize: number;

  constructor(capacity: number) {
    this.generationSize = Math.max(1, Math.floor(capacity / 2));
  }

  get(key: K): V | undefined {
    const value = this.recent.get(key);
    if (value !== undefined) return value;
    const old = this.older.get(key);
    if (old !== undefined) this.insert(key, old);
    return old;
  }

  set(key: K, value: V): void {
    this.insert(key, value);
  }

  delete(key: K): void {
    this.recent.delete(key);
    this.older.delete(key);
  }

  private insert(key: K, value: V): void {
    // A stale copy in the older generation is shadowed by this one and dropped with it.
    this.recent.set(key, value);
    if (this.recent.size >= this.generationSize) {
      this.older = this.recent;
      this.recent = new Map();
    }
  }
}

/** Shares one load per key among concurrent callers and keeps the most recent results. */
export class PromiseCache<K, V> {
  private readonly cache: LruCache<K, Promise<V>>;

  constructor(capacity: number) {
    this.cache = new LruCache(capacity);
  }

  get(key: K, load: () => Promise<V>): Promise<V> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const promise = load();
    this.cache.set(key, promise);
    promise.catch(() => {
      if (this.cache.get(key) === promise) this.cache.delete(key);
    });
    return promise;
  }
}
