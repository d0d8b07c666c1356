// What a repository directory holds, read straight from the store: how many objects,
// their stored (LZ4) and raw sizes (from each frame's content-size field), and the
// indexes an image's manifest names.
import fs from 'node:fs/promises';
import path from 'node:path';
import { readFrameHeader } from '../src/format/lz4-frame.js';

export interface ObjectStats {
  objects: number;
  storedBytes: number;
  rawBytes: number;
}

async function frameSizes(file: string): Promise<{ stored: number; raw: number }> {
  const handle = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(32);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const stored = (await handle.stat()).size;
    return { stored, raw: readFrameHeader(head.subarray(0, bytesRead), file).contentSize };
  } finally {
    await handle.close();
  }
}

function objectFile(repo: string, digest: string): string {
  return path.join(repo, 'chunks', digest.slice(0, 2), digest.slice(2, 4), digest);
}

/** Every object under chunks/ (chunks and indexes). */
export async function storeObjects(repo: string): Promise<ObjectStats> {
  const stats: ObjectStats = { objects: 0, storedBytes: 0, rawBytes: 0 };
  for (const entry of await fs.readdir(path.join(repo, 'chunks'), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const sizes = await frameSizes(path.join(entry.parentPath ?? entry.path, entry.name));
    stats.objects++;
    stats.storedBytes += sizes.stored;
    stats.rawBytes += sizes.raw;
  }
  return stats;
}

async function imageVolumes(repo: string, image: string): Promise<{ index: string; chunkSize: number }[]> {
  const [machine, timestamp] = image.split('@') as [string, string];
  const manifest = JSON.parse(
    await fs.readFile(path.join(repo, 'images', machine, timestamp, 'manifest.json'), 'utf8'),
  ) as { disks: { volumes: { index: string; chunkSize: number }[] }[] };
  return manifest.disks.flatMap((disk) => disk.volumes);
}

/** The chunk sizes the volumes of one image (`machine@timestamp`) were cut into. */
export async function imageChunkSizes(repo: string, image: string): Promise<Set<number>> {
  return new Set((await imageVolumes(repo, image)).map((volume) => volume.chunkSize));
}

/** The indexes of one image: how many, and their raw and stored bytes. */
export async function imageIndexes(repo: string, image: string): Promise<ObjectStats> {
  const stats: ObjectStats = { objects: 0, storedBytes: 0, rawBytes: 0 };
  for (const volume of await imageVolumes(repo, image)) {
    const sizes = await frameSizes(objectFile(repo, volume.index));
    stats.objects++;
    stats.storedBytes += sizes.stored;
    stats.rawBytes += sizes.raw;
  }
  return stats;
}
