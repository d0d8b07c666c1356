// A bounded least-recently-used map for parsed metadata (inode-table blocks, inodes,
// block maps, directories), so a walk of a large tree reads each block once or so.

export class LruCache<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as K;
      this.entries.delete(oldest);
    }
  }

  delete(key: K): void {
    this.entries.delete(key);
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
