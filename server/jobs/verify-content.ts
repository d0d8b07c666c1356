// The content stage of verification: every distinct chunk the images reference read
// once, decompressed and re-hashed. A chunk that does not hash to its name is corrupt,
// and every image that uses it lacks it.
import { FormatError } from '../../src/core/errors.js';
import { decodeChunk } from '../../src/format/chunk.js';
import { type ObjectStore, chunkKey } from '../store/store.js';
import type { VerificationFindings } from './verify-findings.js';

export interface ChunkCheck {
  ok: boolean;
  /** Bytes of the stored frame read (0 when it could not be read). */
  bytes: number;
}

/** Read one stored chunk and prove it hashes to its name. */
export async function checkChunk(store: ObjectStore, digest: string): Promise<ChunkCheck> {
  let frame: Buffer;
  try {
    frame = await store.get(chunkKey(digest));
  } catch {
    return { ok: false, bytes: 0 };
  }
  try {
    decodeChunk(frame, digest);
    return { ok: true, bytes: frame.length };
  } catch (error) {
    if (error instanceof FormatError) return { ok: false, bytes: frame.length };
    throw error;
  }
}

/** Check `digests` one by one into `findings`; `onChecked` follows the progress. */
export async function checkContent(
  store: ObjectStore,
  digests: string[],
  findings: VerificationFindings,
  onChecked: () => void = () => undefined,
): Promise<void> {
  for (const digest of digests) {
    const outcome = await checkChunk(store, digest);
    if (outcome.ok) findings.verified.add(digest);
    else findings.corrupt.add(digest);
    for (const user of findings.chunkUsers.get(digest)!) {
      findings.addBytesRead(user, outcome.bytes);
      if (!outcome.ok) findings.lacks(user, digest);
    }
    onChecked();
  }
}
