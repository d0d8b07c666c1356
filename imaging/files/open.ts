// Opening a volume's files through the repository client: the chunk source that
// `files` and `nbd` share.
import type { RepositorySource } from '../../src/client/ports.js';
import { GarbageBudget } from '../../src/core/heap-budget.js';
import type { ImageVolumeOptions } from '../image-volume.js';
import { openVolumeFiles, type OpenedVolume } from './volume-files.js';

export async function openImageVolume(
  client: RepositorySource,
  reference: string,
  selector?: string,
  options: ImageVolumeOptions = {},
): Promise<OpenedVolume & { image: string }> {
  const { image, manifest } = await client.manifest(reference);
  // Every fetched chunk is a response body and its decoded copy, native memory V8 frees
  // only when it collects: nudge it, as capture does.
  const garbage = new GarbageBudget(8 << 20);
  const chunk = async (digest: string, maxSize: number) => {
    const bytes = await client.chunk(digest, maxSize);
    garbage.add(bytes.length);
    return bytes;
  };
  const opened = await openVolumeFiles({ chunk }, manifest, (digest) => client.index(digest), selector, options);
  return { ...opened, image: image.id };
}
