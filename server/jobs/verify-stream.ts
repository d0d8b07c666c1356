// The restore-stream stage of verification: every volume reassembled from the store in
// order, through the same chunk walk a restore uses, and hashed as a restore would write
// it; the digest must equal the content digest taken when the disk was read.
import { contentDigestOfPieces, volumeChunks } from '../../src/format/chunk-stream.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import { type Disk, type Manifest, type Volume, manifestVolumes } from '../../src/format/manifest.js';
import { type ObjectStore, chunkKey } from '../store/store.js';
import type { VerificationFindings } from './verify-findings.js';
import type { VolumeVerification } from './verify-report.js';

/** Chunks read ahead while a volume is reassembled: the store's reads overlap the hashing. */
const STREAM_READ_AHEAD = 4;

/** The content digest of a volume reassembled from the store, as a restore would write it. */
export function volumeStreamDigest(store: ObjectStore, index: FixedIndex): Promise<string> {
  return contentDigestOfPieces(
    volumeChunks(index, (digest) => store.get(chunkKey(digest)), { readAhead: STREAM_READ_AHEAD }),
  );
}

export interface VolumeStreamCheck {
  verification: VolumeVerification;
  /** What is wrong with the volume's stream (a chunk that cannot be read, a wrong digest), or null. */
  problem: string | null;
}

/** Reassemble one volume (its index already read, or undefined if it could not be) and compare. */
export async function checkVolumeStream(
  store: ObjectStore,
  index: FixedIndex | undefined,
  disk: Pick<Disk, 'id'>,
  volume: Pick<Volume, 'id' | 'contentDigest'>,
): Promise<VolumeStreamCheck> {
  const where = `${disk.id}/${volume.id}`;
  let streamDigest: string | null = null;
  let problem: string | null = null;
  if (index) {
    try {
      streamDigest = await volumeStreamDigest(store, index);
    } catch (error) {
      problem = `${where}: ${(error as Error).message}`;
    }
  }
  const ok = streamDigest === volume.contentDigest;
  if (streamDigest && !ok)
    problem = `${where}: reassembled volume hashes to ${streamDigest}, the image says ${volume.contentDigest}`;
  return {
    verification: { disk: disk.id, volume: volume.id, contentDigest: volume.contentDigest, streamDigest, ok },
    problem,
  };
}

/** Every volume of one image, in order; an image that lacks objects is not reassembled. */
export async function checkImageStreams(
  store: ObjectStore,
  image: string,
  findings: VerificationFindings,
): Promise<void> {
  const manifest = findings.manifests.get(image);
  if (!manifest) return;
  const result = findings.result(image);
  if (findings.damage.has(image)) {
    // Its lost objects are already named; a stream cannot be reassembled without them.
    result.volumes.push(...unstreamedVolumes(manifest, false));
    return;
  }
  for (const { disk, volume } of manifestVolumes(manifest)) {
    const { verification, problem } = await checkVolumeStream(store, findings.indexes.get(volume.index), disk, volume);
    if (problem) findings.problem(image, problem);
    result.volumes.push(verification);
  }
}

/** The volumes of an image whose streams were not reassembled, ok unless the image lacks objects. */
export function unstreamedVolumes(manifest: Manifest, ok: boolean): VolumeVerification[] {
  return [...manifestVolumes(manifest)].map(({ disk, volume }) => ({
    disk: disk.id,
    volume: volume.id,
    contentDigest: volume.contentDigest,
    streamDigest: null,
    ok,
  }));
}
