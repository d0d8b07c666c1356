// Rebuild the catalog from the store alone: every manifest becomes an image again,
// every object is recorded with its sizes, and each machine is granted the objects
// its images reference. Tokens and sessions are not in the store and are kept.
// Offline (the server stopped) the rebuildable tables are cleared and filled again.
// Online (the server running) the catalog is reconciled with the store instead, so
// uploads, commits and restores go on meanwhile: objects and images the store has
// and the catalog lacks are added; rows whose file is gone are dropped, but only after
// a second look at the store, and never a row first written after the reindex began.
import { digestOf } from '../src/format/digest.js';
import { imageId } from '../src/format/image-ref.js';
import { readFrameHeader } from '../src/format/lz4-frame.js';
import { type Manifest, manifestVolumes, parseManifestText } from '../src/format/manifest.js';
import type { Repository } from './repository.js';
import { absentObjects } from './store/presence.js';
import { digestOfChunkKey, manifestKey, parseManifestKey } from './store/store.js';

export interface ReindexReport {
  images: number;
  objects: number;
  skipped: { key: string; reason: string }[];
  /** What an online reindex changed in the running catalog. */
  changes?: { imagesAdded: number; imagesDropped: number; objectsAdded: number; objectsDropped: number };
}

interface StoredManifest {
  machine: string;
  timestamp: string;
  digest: string;
  manifest: Manifest;
}

const BATCH = 5000;

export async function reindex(repository: Repository, options: { online?: boolean } = {}): Promise<ReindexReport> {
  return options.online ? reconcile(repository) : rebuild(repository);
}

async function rebuild(repository: Repository): Promise<ReindexReport> {
  const { store, catalog } = repository;
  const report: ReindexReport = { images: 0, objects: 0, skipped: [] };
  const { manifests, indexDigests } = await readManifests(repository, report);

  catalog.db.transaction(() => catalog.clearRebuildable())();
  const insert = catalog.db.prepare(
    'INSERT INTO objects (digest, kind, stored_size, raw_size, first_seen, last_touched) VALUES (?, ?, ?, ?, ?, ?)',
  );
  let batch: (() => void)[] = [];
  const flush = () => {
    catalog.db.transaction(() => batch.forEach((write) => write()))();
    batch = [];
  };
  for await (const object of store.list('chunks/')) {
    const digest = digestOfChunkKey(object.key);
    if (!digest) continue;
    const rawSize = await rawSizeOf(repository, object.key, report);
    if (rawSize === null) continue;
    const kind = indexDigests.has(digest) ? 'index' : 'chunk';
    const when = Math.round(object.mtimeMs);
    batch.push(() => insert.run(Buffer.from(digest, 'hex'), kind, object.size, rawSize, when, when));
    report.objects++;
    if (batch.length >= BATCH) flush();
  }
  flush();

  for (const entry of manifests) {
    await insertImage(repository, entry, report);
    report.images++;
  }
  await continueReportChain(repository);
  return report;
}

async function reconcile(repository: Repository): Promise<ReindexReport> {
  const { store, catalog, clock } = repository;
  const started = clock.now();
  const report: ReindexReport = {
    images: 0,
    objects: 0,
    skipped: [],
    changes: { imagesAdded: 0, imagesDropped: 0, objectsAdded: 0, objectsDropped: 0 },
  };
  const changes = report.changes!;
  const { manifests, indexDigests } = await readManifests(repository, report);

  // What the store holds, in a scratch table so a large store does not sit in memory.
  const db = catalog.db;
  db.exec(
    'CREATE TEMP TABLE IF NOT EXISTS reindex_listed (digest BLOB PRIMARY KEY, stored_size INTEGER NOT NULL, mtime INTEGER NOT NULL) WITHOUT ROWID; DELETE FROM temp.reindex_listed;',
  );
  try {
    const listed = db.prepare(
      'INSERT OR IGNORE INTO temp.reindex_listed (digest, stored_size, mtime) VALUES (?, ?, ?)',
    );
    let batch: [Buffer, number, number][] = [];
    const flush = () => {
      db.transaction(() => batch.forEach((row) => listed.run(...row)))();
      batch = [];
    };
    for await (const object of store.list('chunks/')) {
      const digest = digestOfChunkKey(object.key);
      if (!digest) continue;
      batch.push([Buffer.from(digest, 'hex'), object.size, Math.round(object.mtimeMs)]);
      report.objects++;
      if (batch.length >= BATCH) flush();
    }
    flush();

    // Stored objects the catalog does not know. INSERT OR IGNORE: an upload meanwhile wins.
    const newcomers = db
      .prepare(
        'SELECT l.digest, l.stored_size AS size, l.mtime FROM temp.reindex_listed l WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.digest = l.digest)',
      )
      .all() as { digest: Buffer; size: number; mtime: number }[];
    const insert = db.prepare(
      'INSERT OR IGNORE INTO objects (digest, kind, stored_size, raw_size, first_seen, last_touched) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (const row of newcomers) {
      const digest = row.digest.toString('hex');
      const rawSize = await rawSizeOf(
        repository,
        `chunks/${digest.slice(0, 2)}/${digest.slice(2, 4)}/${digest}`,
        report,
      );
      if (rawSize === null) continue;
      changes.objectsAdded += insert.run(
        row.digest,
        indexDigests.has(digest) ? 'index' : 'chunk',
        row.size,
        rawSize,
        row.mtime,
        row.mtime,
      ).changes;
    }

    // Rows whose file the listing did not see. Rows first written after the reindex began
    // are uploads in progress, and a second look spares a file that came back meanwhile.
    const unseen = (
      db
        .prepare(
          'SELECT o.digest FROM objects o WHERE o.first_seen < ? AND NOT EXISTS (SELECT 1 FROM temp.reindex_listed l WHERE l.digest = o.digest)',
        )
        .all(started) as { digest: Buffer }[]
    ).map((row) => row.digest.toString('hex'));
    for (const digest of await absentObjects(store, unseen)) {
      catalog.forgetObject(digest);
      changes.objectsDropped++;
    }
  } finally {
    db.exec('DROP TABLE IF EXISTS temp.reindex_listed');
  }

  // Images: add what the store has; drop rows whose manifest is gone (and stays gone).
  const inStore = new Set(manifests.map((entry) => imageId(entry.machine, entry.timestamp)));
  for (const entry of manifests) {
    if (catalog.image(imageId(entry.machine, entry.timestamp))) continue;
    if (await insertImage(repository, entry, report)) changes.imagesAdded++;
  }
  for (const image of catalog.listImages()) {
    if (inStore.has(image.id) || image.createdAt >= started) continue;
    if (await store.stat(manifestKey(image.machine, image.timestamp))) continue;
    catalog.deleteImage(image.id);
    changes.imagesDropped++;
  }
  report.images = catalog.listImages().length;
  return report;
}

/** Every manifest in the store, oldest first, and the indexes they name. */
async function readManifests(
  repository: Repository,
  report: ReindexReport,
): Promise<{ manifests: StoredManifest[]; indexDigests: Set<string> }> {
  const { store } = repository;
  const manifests: StoredManifest[] = [];
  const indexDigests = new Set<string>();
  for await (const object of store.list('images/')) {
    const key = parseManifestKey(object.key);
    if (!key) continue;
    const bytes = await store.get(object.key);
    try {
      const manifest = parseManifestText(bytes.toString('utf8'), object.key);
      for (const { volume } of manifestVolumes(manifest)) indexDigests.add(volume.index);
      manifests.push({ ...key, digest: digestOf(bytes), manifest });
    } catch (error) {
      report.skipped.push({ key: object.key, reason: (error as Error).message });
    }
  }
  manifests.sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  return { manifests, indexDigests };
}

async function rawSizeOf(repository: Repository, key: string, report: ReindexReport): Promise<number | null> {
  try {
    return readFrameHeader(await repository.store.get(key), key).contentSize;
  } catch (error) {
    report.skipped.push({ key, reason: (error as Error).message });
    return null;
  }
}

/** Record one stored manifest as an image, with its grants and its recorded state. */
async function insertImage(repository: Repository, entry: StoredManifest, report: ReindexReport): Promise<boolean> {
  const { store, catalog } = repository;
  const key = manifestKey(entry.machine, entry.timestamp);
  const referenced = new Set<string>();
  try {
    for (const { volume } of manifestVolumes(entry.manifest)) {
      referenced.add(volume.index);
      const index = await repository.loadIndex(volume.index);
      for (const digest of index.distinctDigests()) referenced.add(digest);
    }
  } catch (error) {
    report.skipped.push({ key, reason: `unreadable index: ${(error as Error).message}` });
  }
  const createdAt = entry.manifest.createdAt ? Date.parse(entry.manifest.createdAt) : 0;
  const record = repository.imageRecordOf(entry.manifest, entry.timestamp, createdAt, entry.digest, 0);
  // A commit may have recorded it while the indexes were read.
  if (catalog.image(record.id)) return false;
  catalog.insertImage(record, referenced, null);
  const state = await store.get(`images/${entry.machine}/${entry.timestamp}/state.json`).catch(() => null);
  if (state) {
    const {
      state: value,
      reason,
      damagedObjects,
    } = JSON.parse(state.toString('utf8')) as {
      state: 'ok' | 'failed';
      reason: string | null;
      damagedObjects?: string[];
    };
    catalog.setImageState(record.id, value, reason);
    if (value === 'failed' && damagedObjects?.length) catalog.setImageDamage(record.id, damagedObjects);
  }
  return true;
}

/** The chain of verification reports continues from the newest one in the store. */
async function continueReportChain(repository: Repository): Promise<void> {
  let newest: string | null = null;
  for await (const object of repository.store.list('reports/')) if (!newest || object.key > newest) newest = object.key;
  if (newest) repository.catalog.setMeta('last_report_digest', digestOf(await repository.store.get(newest)));
}
