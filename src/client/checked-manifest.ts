// A manifest as a repository returned it, accepted only if its bytes hash to the digest
// the catalog recorded at commit: whatever carried it (HTTP, a directory), a changed or
// swapped manifest is refused before anything is restored from it.
import { FormatError } from '../core/errors.js';
import { digestOf } from '../format/digest.js';
import { type Manifest, parseManifestText } from '../format/manifest.js';
import type { ImageInfo } from './ports.js';

export function checkedManifest(image: ImageInfo, bytes: Buffer): Manifest {
  const actual = digestOf(bytes);
  if (actual !== image.manifestDigest) {
    throw new FormatError(`manifest of ${image.id} hashes to ${actual}, the catalog recorded ${image.manifestDigest}`);
  }
  return parseManifestText(bytes.toString('utf8'), `manifest of ${image.id}`);
}
