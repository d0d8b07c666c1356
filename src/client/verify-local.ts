// Verification on the client, trusting nothing the server says: every chunk is fetched,
// decompressed and re-hashed here, each index is checked against its root digest, and
// each volume is reassembled and compared with the content digest in the manifest.
import { contentDigestOfPieces, volumeChunks } from '../format/chunk-stream.js';
import { manifestVolumes } from '../format/manifest.js';
import type { RepositorySource } from './ports.js';

export interface LocalVerification {
  image: string;
  manifestDigest: string;
  volumes: {
    disk: string;
    volume: string;
    contentDigest: string;
    computed: string | null;
    ok: boolean;
    problem: string | null;
  }[];
  chunksVerified: number;
  bytesFetched: number;
  result: 'ok' | 'failed';
}

export async function verifyLocally(
  client: RepositorySource,
  reference: string,
  onProgress?: (done: number, total: number) => void,
): Promise<LocalVerification> {
  const { image, manifest } = await client.manifest(reference);
  const report: LocalVerification = {
    image: image.id,
    manifestDigest: image.manifestDigest,
    volumes: [],
    chunksVerified: 0,
    bytesFetched: 0,
    result: 'ok',
  };
  const total = [...manifestVolumes(manifest)].reduce((sum, { volume }) => sum + volume.size, 0);
  let done = 0;
  for (const { disk, volume } of manifestVolumes(manifest)) {
    const entry = {
      disk: disk.id,
      volume: volume.id,
      contentDigest: volume.contentDigest,
      computed: null as string | null,
      ok: false,
      problem: null as string | null,
    };
    report.volumes.push(entry);
    try {
      const index = await client.index(volume.index);
      const chunks = volumeChunks(index, (digest) => client.chunkFrame(digest), {
        onLoaded: (bytes) => {
          report.bytesFetched += bytes.length;
        },
      });
      entry.computed = await contentDigestOfPieces(chunks, (chunk) => {
        if (chunk.digest !== null) report.chunksVerified++;
        done += chunk.length;
        onProgress?.(done, total);
      });
      entry.ok = entry.computed === volume.contentDigest;
      if (!entry.ok)
        entry.problem = `reassembled volume hashes to ${entry.computed}, the manifest says ${volume.contentDigest}`;
    } catch (error) {
      entry.problem = (error as Error).message;
    }
  }
  report.result = report.volumes.every((volume) => volume.ok) ? 'ok' : 'failed';
  return report;
}
