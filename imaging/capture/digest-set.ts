// A compact set of digest keys (the first 52 bits of a digest, as a double): open
// addressing in a Float64Array, about 16 bytes a key. A million chunks of a base image
// cost 16 MiB here instead of the ~60 MiB of a Set of numbers.
export class DigestKeySet {
  private table: Float64Array;
  private count = 0;

  constructor(expected = 1024) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.table = new Float64Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Zero marks an empty slot, so a (vanishingly rare) key of 0 is stored as 1. */
  private static slotKey(key: number): number {
    return key === 0 ? 1 : key;
  }

  private static hash(key: number, mask: number): number {
    // The key is already uniformly random: its low bits are a fine start.
    return (key % 4294967296) & mask;
  }

  has(key: number): boolean {
    const wanted = DigestKeySet.slotKey(key);
    const mask = this.table.length - 1;
    for (let slot = DigestKeySet.hash(wanted, mask); ; slot = (slot + 1) & mask) {
      const value = this.table[slot]!;
      if (value === 0) return false;
      if (value === wanted) return true;
    }
  }

  add(key: number): void {
    if ((this.count + 1) * 2 > this.table.length) this.grow();
    const wanted = DigestKeySet.slotKey(key);
    const mask = this.table.length - 1;
    for (let slot = DigestKeySet.hash(wanted, mask); ; slot = (slot + 1) & mask) {
      const value = this.table[slot]!;
      if (value === wanted) return;
      if (value === 0) {
        this.table[slot] = wanted;
        this.count++;
        return;
      }
    }
  }

  private grow(): void {
    const old = this.table;
    this.table = new Float64Array(old.length * 2);
    this.count = 0;
    for (const value of old) if (value !== 0) this.add(value);
  }
}
