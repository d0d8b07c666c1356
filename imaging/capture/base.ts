// The base of an incremental: the previous good image of the same disks, and the digests
// its volumes hold, which this capture need neither compress nor send. A base index that
// cannot be read only costs time: its chunks are compared with the repository instead.
import type { CaptureRepository } from '../../src/client/ports.js';
import type { Logger } from '../../src/core/log.js';
import { type Disk, type Manifest, diskKeysOf } from '../../src/format/manifest.js';
import { DigestKeySet } from './digest-set.js';
import type { DiskPlan } from './plan.js';
import { digestKey } from './volume.js';

export interface BaseDigests {
  /** The parent of the new image, null for a first (or a full) capture. */
  image: string | null;
  /** Keys of every chunk digest the base's readable indexes name. */
  keys: DigestKeySet;
  /** Index digests of the base's volumes: an identical new index is not sent again. */
  indexes: Set<string>;
}

/** No base: every chunk is compared with the repository. */
export function noBase(): BaseDigests {
  return { image: null, keys: new DigestKeySet(), indexes: new Set() };
}

/** The digests of the previous image of these disks: what need not be sent again. */
export async function loadBase(
  repository: CaptureRepository,
  machine: string,
  disks: DiskPlan[],
  log: Logger,
): Promise<BaseDigests> {
  const base = noBase();
  const manifests = new Map<string, Manifest>();
  for (const disk of disks) {
    const keys = diskKeysOf(disk);
    const image = await repository.baseImage(machine, keys);
    if (!image) continue;
    base.image ??= image.id;
    if (!manifests.has(image.id)) manifests.set(image.id, (await repository.manifest(image.id)).manifest);
    const previous = sameDisk(manifests.get(image.id)!, keys);
    if (previous) await addDiskDigests(repository, base, previous, image.id, log);
  }
  return base;
}

/** The disk of `manifest` that any of `keys` names. */
function sameDisk(manifest: Manifest, keys: string[]): Disk | undefined {
  const wanted = new Set(keys);
  return manifest.disks.find((candidate) => diskKeysOf(candidate).some((key) => wanted.has(key)));
}

async function addDiskDigests(
  repository: CaptureRepository,
  base: BaseDigests,
  disk: Disk,
  image: string,
  log: Logger,
): Promise<void> {
  for (const volume of disk.volumes) {
    base.indexes.add(volume.index);
    try {
      const index = await repository.index(volume.index);
      for (let position = 0; position < index.chunkCount; position++) {
        const digest = index.get(position);
        if (digest) base.keys.add(digestKey(digest));
      }
    } catch (error) {
      log.warn(
        { image, index: volume.index, error: (error as Error).message },
        'base index unreadable; its chunks will be compared with the server',
      );
    }
  }
}
