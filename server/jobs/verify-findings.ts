// What one verification run has learned so far, shared by its stages: each image's
// result, which images use which chunk, and every object found lost or corrupt. The
// stages add to it; recording the outcome and the report read it.
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { Manifest } from '../../src/format/manifest.js';
import type { ImageRecord } from '../catalog/catalog.js';
import type { ImageVerification } from './verify-report.js';

export class VerificationFindings {
  readonly results = new Map<string, ImageVerification>();
  readonly manifests = new Map<string, Manifest>();
  /** Indexes read so far, by digest: images that share one read it once. */
  readonly indexes = new Map<string, FixedIndex>();
  /** Every referenced chunk, with the images in scope that use it. */
  readonly chunkUsers = new Map<string, Set<string>>();
  readonly missing = new Set<string>();
  readonly corrupt = new Set<string>();
  readonly verified = new Set<string>();
  readonly damagedIndexes = new Map<string, 'missing' | 'corrupt'>();
  /**
   * Per image, the objects it lacks (lost or corrupt); an image whose only problems
   * are such objects is whole again once they are uploaded again.
   */
  readonly damage = new Map<string, Set<string>>();
  /** Images with a problem that no upload can repair (a bad manifest, a wrong stream). */
  readonly otherProblems = new Set<string>();
  readonly bytesPerImage = new Map<string, number>();
  quarantined: string[] = [];
  alsoFailed: string[] = [];

  /** The result of `image`, begun empty and ok. */
  begin(image: ImageRecord): ImageVerification {
    const result: ImageVerification = {
      image: image.id,
      machine: image.machine,
      manifestDigest: image.manifestDigest,
      indexRoots: [],
      chunksReferenced: 0,
      chunksVerified: 0,
      chunksMissing: 0,
      chunksCorrupt: 0,
      bytesRead: 0,
      volumes: [],
      problems: [],
      result: 'ok',
    };
    this.results.set(image.id, result);
    return result;
  }

  result(id: string): ImageVerification {
    return this.results.get(id)!;
  }

  /** `image` lacks `digest` (lost or corrupt). */
  lacks(image: string, digest: string): void {
    let objects = this.damage.get(image);
    if (!objects) {
      objects = new Set();
      this.damage.set(image, objects);
    }
    objects.add(digest);
  }

  /** A problem of `image` that is not a lost or corrupt object. */
  problem(image: string, text: string): void {
    this.result(image).problems.push(text);
    this.otherProblems.add(image);
  }

  addBytesRead(image: string, bytes: number): void {
    this.bytesPerImage.set(image, (this.bytesPerImage.get(image) ?? 0) + bytes);
  }

  /** Referenced chunks that are in the store, to be read by the content stage. */
  presentChunks(): string[] {
    return [...this.chunkUsers.keys()].filter((digest) => !this.missing.has(digest));
  }

  /** Objects to move to quarantine: corrupt chunks and corrupt indexes. */
  corruptObjects(): string[] {
    return [
      ...this.corrupt,
      ...[...this.damagedIndexes].filter(([, how]) => how === 'corrupt').map(([digest]) => digest),
    ];
  }

  /** Every object found lost or corrupt, which the catalog must forget. */
  lostOrCorrupt(): Set<string> {
    return new Set([...this.corruptObjects(), ...this.missing, ...this.damagedIndexes.keys()]);
  }
}
