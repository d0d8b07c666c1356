// Which objects are really in the store: the catalog is a cache of the store and can
// outlive a lost file, so the checks that decide whether an image is whole ask the
// store itself. Stats run a bounded number at a time so a big image does not open
// thousands of file handles (or S3 requests) at once.
import type { ObjectStore } from './store.js';
import { chunkKey } from './store.js';

/** Stats in flight at once: enough to hide latency, few enough to leave the disk to uploads. */
export const PRESENCE_CHECK_CONCURRENCY = 32;

/** Those of `digests` whose object file is absent from the store, in the order given. */
export async function absentObjects(
  store: ObjectStore,
  digests: readonly string[],
  concurrency = PRESENCE_CHECK_CONCURRENCY,
): Promise<string[]> {
  const absent = new Array<boolean>(digests.length).fill(false);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < digests.length) {
      const position = next++;
      absent[position] = (await store.stat(chunkKey(digests[position]!))) === null;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, digests.length) }, worker));
  return digests.filter((_digest, position) => absent[position]);
}
