// File-level access on the server: a volume of an image opened straight from the
// store (no HTTP in between), cached for the next request.
import { MAX_CHUNK_SIZE, decodeChunk } from '../src/format/chunk.js';
import type { Principal } from './auth.js';
import { requireMachineAccess, requireRole } from './auth.js';
import { openVolumeFiles, type OpenedVolume } from '../imaging/files/volume-files.js';
import type { ChunkSource } from '../imaging/image-volume.js';
import type { Repository } from './repository.js';
import { readStats } from './stats.js';
import { chunkKey } from './store/store.js';

export class FileAccess {
  private readonly opened = new Map<string, Promise<OpenedVolume>>();
  private readonly source: ChunkSource;

  constructor(private readonly repository: Repository) {
    this.source = {
      chunk: async (digest: string, maxSize = MAX_CHUNK_SIZE) => {
        const frame = await repository.store.get(chunkKey(digest));
        readStats.chunksServed++;
        readStats.chunkBytesServed += frame.length;
        return decodeChunk(frame, digest, maxSize);
      },
    };
  }

  /** The files of volume `selector` of an image; machines and restore codes reach only their own, auditors none. */
  async open(principal: Principal, reference: string, selector: string): Promise<OpenedVolume & { image: string }> {
    requireRole(principal, 'admin', 'machine', 'restore');
    const image = this.repository.resolveImage(principal, reference);
    requireMachineAccess(principal, image.machine, 'read');
    const key = `${image.id}/${selector}`;
    let pending = this.opened.get(key);
    if (!pending) {
      pending = (async () => {
        const { manifest } = await this.repository.manifest(principal, image.id);
        return openVolumeFiles(this.source, manifest, (digest) => this.repository.loadIndex(digest), selector, {
          cacheBytes: 32 << 20,
        });
      })();
      pending.catch(() => this.opened.delete(key));
      this.opened.set(key, pending);
      if (this.opened.size > 8) this.opened.delete(this.opened.keys().next().value!);
    }
    return { ...(await pending), image: image.id };
  }
}
