// Opening a volume's files through the repository client: the chunk source that
// `files` and `nbd` share.
import type { RepositoryClient } from '../../src/client/repository.js';
import type { ImageVolumeOptions } from '../image-volume.js';
import { openVolumeFiles, type OpenedVolume } from './volume-files.js';

export async function openImageVolume(client: RepositoryClient, reference: string, selector?: string, options: ImageVolumeOptions = {}): Promise<OpenedVolume & { image: string }> {
  const { image, manifest } = await client.manifest(reference);
  const opened = await openVolumeFiles({ chunk: (digest, maxSize) => client.chunk(digest, maxSize) }, manifest, (digest) => client.index(digest), selector, options);
  return { ...opened, image: image.id };
}
