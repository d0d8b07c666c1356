// What a verification run changes in the repository once every stage has read what it
// reads: corrupt objects quarantined, lost and corrupt ones forgotten by the catalog (so
// `missing` asks for them again), and the state of every image that uses one recorded.
import { manifestVolumes, parseManifestText } from '../../src/format/manifest.js';
import type { Repository } from '../repository.js';
import { chunkKey, manifestKey, quarantineKey } from '../store/store.js';
import type { VerificationFindings } from './verify-findings.js';

export async function recordOutcome(
  repository: Repository,
  job: string,
  findings: VerificationFindings,
): Promise<void> {
  findings.quarantined = await quarantine(repository, findings.corruptObjects());
  const lostOrCorrupt = findings.lostOrCorrupt();
  for (const digest of lostOrCorrupt) repository.catalog.forgetObject(digest);
  countCheckedChunks(findings);
  const outside = lostOrCorrupt.size
    ? await imagesUsing(repository, lostOrCorrupt, new Set(findings.results.keys()))
    : new Map<string, Set<string>>();
  findings.alsoFailed = [...outside.keys()];
  await recordImagesInScope(repository, job, findings);
  await failImagesOutside(repository, job, outside);
}

/** Move each corrupt object out of the chunk store; the ones moved are returned. */
async function quarantine(repository: Repository, digests: string[]): Promise<string[]> {
  const quarantined: string[] = [];
  for (const digest of digests) {
    try {
      await repository.store.move(chunkKey(digest), quarantineKey(digest));
      quarantined.push(digest);
    } catch (error) {
      repository.log.error({ digest, err: error }, 'could not quarantine a corrupt object');
    }
  }
  return quarantined;
}

/** Each image's count of its chunks found corrupt or verified. */
function countCheckedChunks(findings: VerificationFindings): void {
  for (const [digest, users] of findings.chunkUsers) {
    for (const user of users) {
      const result = findings.result(user);
      if (findings.corrupt.has(digest)) result.chunksCorrupt++;
      else if (findings.verified.has(digest)) result.chunksVerified++;
    }
  }
}

/** Every image in scope gets its result, its damage and its recorded state. */
async function recordImagesInScope(repository: Repository, job: string, findings: VerificationFindings): Promise<void> {
  const { catalog } = repository;
  for (const result of findings.results.values()) {
    result.bytesRead += findings.bytesPerImage.get(result.image) ?? 0;
    if (result.chunksMissing) result.problems.push(`${result.chunksMissing} referenced chunks are missing`);
    if (result.chunksCorrupt)
      result.problems.push(`${result.chunksCorrupt} referenced chunks are corrupt (quarantined)`);
    result.result = result.problems.length ? 'failed' : 'ok';
    // Only an image whose every problem is a lost or corrupt object can be repaired by uploads.
    const repairable = !findings.otherProblems.has(result.image);
    catalog.setImageDamage(result.image, repairable ? (findings.damage.get(result.image) ?? []) : []);
    await repository.recordImageState(result.image, result.result, result.problems.join('; ') || null, {
      verification: job,
    });
  }
}

/** Images outside the scope that use a lost or corrupt object fail too. */
async function failImagesOutside(
  repository: Repository,
  job: string,
  outside: Map<string, Set<string>>,
): Promise<void> {
  const { catalog } = repository;
  for (const [id, lacks] of outside) {
    const image = catalog.image(id);
    // An image that had failed for another reason stays failed for it, and is not repairable by uploads.
    const repairable = image !== null && (image.state === 'ok' || catalog.imageDamage(id).length > 0);
    if (repairable) catalog.setImageDamage(id, [...catalog.imageDamage(id), ...lacks]);
    await repository.recordImageState(id, 'failed', 'uses an object found lost or corrupt by verification', {
      verification: job,
    });
  }
}

/** Every image outside `skip` whose indexes name one of `digests`, with the ones it names. */
export async function imagesUsing(
  repository: Repository,
  digests: Set<string>,
  skip: Set<string>,
): Promise<Map<string, Set<string>>> {
  const users = new Map<string, Set<string>>();
  for (const image of repository.catalog.listImages()) {
    if (skip.has(image.id)) continue;
    const used = new Set<string>();
    try {
      const bytes = await repository.store.get(manifestKey(image.machine, image.timestamp));
      const manifest = parseManifestText(bytes.toString('utf8'));
      for (const { volume } of manifestVolumes(manifest)) {
        if (digests.has(volume.index)) {
          used.add(volume.index);
          continue;
        }
        const index = await repository.loadIndex(volume.index);
        for (const digest of index.distinctDigests()) if (digests.has(digest)) used.add(digest);
      }
    } catch {
      // Unreadable: it cannot be shown whole, so it is failed too (not repairable by uploads).
      users.set(image.id, new Set());
      continue;
    }
    if (used.size) users.set(image.id, used);
  }
  return users;
}
