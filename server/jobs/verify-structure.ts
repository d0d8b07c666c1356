// The structural stage of verification: each image's manifest read back and hashed
// against the catalog's record, its indexes read, and every chunk they name looked up
// in the store. Lost or corrupt indexes and absent chunks are noted as damage.
import { FormatError, NotFoundError } from '../../src/core/errors.js';
import { digestOf } from '../../src/format/digest.js';
import { type Manifest, manifestVolumes, parseManifestText } from '../../src/format/manifest.js';
import type { ImageRecord } from '../catalog/catalog.js';
import type { Repository } from '../repository.js';
import { chunkKey, manifestKey } from '../store/store.js';
import type { VerificationFindings } from './verify-findings.js';

/** The images a job covers: every image, or those named that still exist. */
export function imagesInScope(repository: Repository, scope: { all: boolean; images: string[] }): ImageRecord[] {
  const { catalog } = repository;
  return scope.all
    ? catalog.listImages()
    : scope.images.map((id) => catalog.image(id)).filter((image): image is ImageRecord => image !== null);
}

/** Check one image's manifest, indexes and chunk presence into `findings`. */
export async function checkImageStructure(
  repository: Repository,
  image: ImageRecord,
  findings: VerificationFindings,
): Promise<void> {
  const result = findings.begin(image);
  try {
    const manifest = await readManifest(repository, image, findings);
    const referenced = await chunksOfIndexes(repository, image, manifest, findings);
    result.chunksReferenced = referenced.size;
    await notePresence(repository, image.id, referenced, findings);
  } catch (error) {
    findings.problem(
      image.id,
      error instanceof NotFoundError ? 'manifest is missing from the store' : (error as Error).message,
    );
  }
}

/** The manifest as stored, which must hash to what the catalog recorded at commit. */
async function readManifest(
  repository: Repository,
  image: ImageRecord,
  findings: VerificationFindings,
): Promise<Manifest> {
  const bytes = await repository.store.get(manifestKey(image.machine, image.timestamp));
  findings.result(image.id).bytesRead += bytes.length;
  const actual = digestOf(bytes);
  if (actual !== image.manifestDigest)
    findings.problem(image.id, `manifest hashes to ${actual}, recorded ${image.manifestDigest}`);
  const manifest = parseManifestText(bytes.toString('utf8'), `manifest of ${image.id}`);
  findings.manifests.set(image.id, manifest);
  return manifest;
}

/** The distinct chunks the image's indexes name; an index lost or corrupt is damage the image lacks. */
async function chunksOfIndexes(
  repository: Repository,
  image: ImageRecord,
  manifest: Manifest,
  findings: VerificationFindings,
): Promise<Set<string>> {
  const result = findings.result(image.id);
  const referenced = new Set<string>();
  for (const { disk, volume } of manifestVolumes(manifest)) {
    result.indexRoots.push(volume.index);
    const where = `${disk.id}/${volume.id}`;
    try {
      let index = findings.indexes.get(volume.index);
      if (!index) {
        index = await repository.loadIndex(volume.index, `index of ${image.id} ${where}`);
        findings.indexes.set(volume.index, index);
      }
      for (const digest of index.distinctDigests()) referenced.add(digest);
    } catch (error) {
      const lost = error instanceof NotFoundError;
      if (!lost && !(error instanceof FormatError)) throw error;
      findings.damagedIndexes.set(volume.index, lost ? 'missing' : 'corrupt');
      findings.lacks(image.id, volume.index);
      result.problems.push(
        lost
          ? `index ${volume.index} of ${where} is missing`
          : `index ${volume.index} of ${where} is corrupt: ${(error as Error).message}`,
      );
    }
  }
  return referenced;
}

/** Each chunk is looked up in the store once per run, however many images use it. */
async function notePresence(
  repository: Repository,
  image: string,
  referenced: Set<string>,
  findings: VerificationFindings,
): Promise<void> {
  const result = findings.result(image);
  for (const digest of referenced) {
    let users = findings.chunkUsers.get(digest);
    if (!users) {
      users = new Set();
      findings.chunkUsers.set(digest, users);
      if (!(await repository.store.stat(chunkKey(digest)))) findings.missing.add(digest);
    }
    users.add(image);
    if (findings.missing.has(digest)) {
      result.chunksMissing++;
      findings.lacks(image, digest);
    }
  }
}
