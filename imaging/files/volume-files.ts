// Opening the files of one volume of an image: which volume (`--volume N` is the
// partition number, as in /dev/sdaN; the default is the largest filesystem), and which
// filesystem module reads it.
import { NotFoundError, UsageError } from '../../src/core/errors.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { Disk, Manifest, Volume } from '../../src/format/manifest.js';
import type { FileTree, FilesystemModule } from '../fs/filesystem.js';
import { filesystemModules } from '../fs/registry.js';
import { type ChunkSource, ImageVolumeReader, type ImageVolumeOptions } from '../image-volume.js';

const MODULE_OF_TYPE: Record<string, string> = { ext2: 'ext', ext3: 'ext', ext4: 'ext', vfat: 'fat', ntfs: 'ntfs' };

export function moduleFor(volume: Volume): FilesystemModule | null {
  const name = volume.filesystem ? MODULE_OF_TYPE[volume.filesystem.type] : undefined;
  return filesystemModules.find((module) => module.name === name) ?? null;
}

/** `selector`: a partition number, a volume id ('p2', 'disk'), or 'disk1/p2'; none: the largest filesystem. */
export function pickVolume(manifest: Manifest, selector?: string): { disk: Disk; volume: Volume } {
  const candidates = manifest.disks.flatMap((disk) => disk.volumes.map((volume) => ({ disk, volume })));
  const readable = candidates.filter(({ volume }) => moduleFor(volume));
  if (selector === undefined) {
    const largest = readable.sort((a, b) => b.volume.filesystem!.totalBytes - a.volume.filesystem!.totalBytes)[0];
    if (!largest)
      throw new NotFoundError(
        `image ${manifest.id} has no filesystem whose files can be read (${candidates.map(({ volume }) => `${volume.id}: ${volume.filesystem?.type ?? 'raw'}`).join(', ')})`,
      );
    return largest;
  }
  const [diskPart, volumePart] = selector.includes('/') ? selector.split('/', 2) : [undefined, selector];
  const match = candidates.find(
    ({ disk, volume }) =>
      (diskPart === undefined || disk.id === diskPart) &&
      (String(volume.partitionNumber) === volumePart || volume.id === volumePart),
  );
  if (!match)
    throw new NotFoundError(
      `image ${manifest.id} has no volume ${selector}; it has ${candidates
        .filter(({ volume }) => volume.kind !== 'gap')
        .map(
          ({ disk, volume }) =>
            `${manifest.disks.length > 1 ? `${disk.id}/` : ''}${volume.partitionNumber ?? volume.id} (${volume.filesystem?.type ?? 'raw'})`,
        )
        .join(', ')}`,
    );
  if (!moduleFor(match.volume))
    throw new UsageError(
      `volume ${selector} of ${manifest.id} holds ${match.volume.filesystem?.type ?? 'no filesystem Backup365 reads'}: its files cannot be listed`,
    );
  return match;
}

export interface OpenedVolume {
  tree: FileTree;
  reader: ImageVolumeReader;
  disk: Disk;
  volume: Volume;
}

export async function openVolumeFiles(
  source: ChunkSource,
  manifest: Manifest,
  index: (digest: string) => Promise<FixedIndex>,
  selector?: string,
  options: ImageVolumeOptions = {},
): Promise<OpenedVolume> {
  const { disk, volume } = pickVolume(manifest, selector);
  const reader = new ImageVolumeReader(
    source,
    volume,
    await index(volume.index),
    `${manifest.id} ${disk.id}/${volume.id}`,
    options,
  );
  const module = moduleFor(volume)!;
  const opened = await module.open(reader);
  if (!opened.files) throw new UsageError(`the ${module.name} module cannot list files`);
  return { tree: await opened.files(), reader, disk, volume };
}
