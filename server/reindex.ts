// Rebuild the catalog from the store alone: every manifest becomes an image again,
// every object is recorded with its sizes, and each machine is granted the objects
// its images reference. Tokens and sessions are not in the store and are kept.
import { readFrameHeader } from '../src/format/lz4-frame.js';
import { digestOf } from '../src/format/digest.js';
import { manifestVolumes, parseManifestText } from '../src/format/manifest.js';
import type { Repository } from './repository.js';
import { digestOfChunkKey, parseManifestKey } from './store/store.js';

export interface ReindexReport {
  images: number;
  objects: number;
  skipped: { key: string; reason: string }[];
}

export async function reindex(repository: Repository): Promise<ReindexReport> {
  const { store, catalog } = repository;
  const report: ReindexReport = { images: 0, objects: 0, skipped: [] };
  const manifests: { machine: string; timestamp: string; text: string; digest: string }[] = [];
  for await (const object of store.list('images/')) {
    const key = parseManifestKey(object.key);
    if (!key) continue;
    const bytes = await store.get(object.key);
    manifests.push({ ...key, text: bytes.toString('utf8'), digest: digestOf(bytes) });
  }
  const indexDigests = new Set<string>();
  const parsed = manifests.flatMap((entry) => {
    try {
      const manifest = parseManifestText(entry.text, object(entry));
      for (const { volume } of manifestVolumes(manifest)) indexDigests.add(volume.index);
      return [{ ...entry, manifest }];
    } catch (error) {
      report.skipped.push({ key: object(entry), reason: (error as Error).message });
      return [];
    }
  });

  catalog.db.transaction(() => catalog.clearRebuildable())();
  const insert = catalog.db.prepare('INSERT INTO objects (digest, kind, stored_size, raw_size, first_seen, last_touched) VALUES (?, ?, ?, ?, ?, ?)');
  let batch: (() => void)[] = [];
  const flush = () => {
    catalog.db.transaction(() => batch.forEach((write) => write()))();
    batch = [];
  };
  for await (const object of store.list('chunks/')) {
    const digest = digestOfChunkKey(object.key);
    if (!digest) continue;
    let rawSize: number;
    try {
      rawSize = readFrameHeader(await store.get(object.key), object.key).contentSize;
    } catch (error) {
      report.skipped.push({ key: object.key, reason: (error as Error).message });
      continue;
    }
    const kind = indexDigests.has(digest) ? 'index' : 'chunk';
    const when = Math.round(object.mtimeMs);
    batch.push(() => insert.run(Buffer.from(digest, 'hex'), kind, object.size, rawSize, when, when));
    report.objects++;
    if (batch.length >= 5000) flush();
  }
  flush();

  for (const entry of parsed.sort((a, b) => a.timestamp.localeCompare(b.timestamp))) {
    const referenced = new Set<string>();
    try {
      for (const { volume } of manifestVolumes(entry.manifest)) {
        referenced.add(volume.index);
        const index = await repository.loadIndex(volume.index);
        for (const digest of index.distinctDigests()) referenced.add(digest);
      }
    } catch (error) {
      report.skipped.push({ key: object(entry), reason: `unreadable index: ${(error as Error).message}` });
    }
    const createdAt = entry.manifest.createdAt ? Date.parse(entry.manifest.createdAt) : 0;
    const record = repository.imageRecordOf(entry.manifest, entry.timestamp, createdAt, entry.digest, 0);
    catalog.insertImage(record, referenced, null);
    const state = await store.get(`images/${entry.machine}/${entry.timestamp}/state.json`).catch(() => null);
    if (state) {
      const { state: value, reason } = JSON.parse(state.toString('utf8')) as { state: 'ok' | 'failed'; reason: string | null };
      catalog.setImageState(record.id, value, reason);
    }
    report.images++;
  }
  // The chain of verification reports continues from the newest one in the store.
  let newest: string | null = null;
  for await (const object of store.list('reports/')) if (!newest || object.key > newest) newest = object.key;
  if (newest) catalog.setMeta('last_report_digest', digestOf(await store.get(newest)));
  return report;
}

function object(entry: { machine: string; timestamp: string }): string {
  return `images/${entry.machine}/${entry.timestamp}/manifest.json`;
}
