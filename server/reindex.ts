// Rebuild the catalog from the store alone: every manifest becomes an image again,
// every object is recorded with its sizes, and each machine is granted the objects
// its images reference. Tokens and sessions are not in the store and are kept.
// Offline (the server stopped) the rebuildable tables are cleared and filled again.
// Online (the server running) the catalog is reconciled with the store instead, so
// uploads, commits and restores go on meanwhile: objects and images the store has
// and the catalog lacks are added; rows whose file is gone are dropped, but only after
// a second look at the store, and never a row first written after the reindex began.
import type Database from 'better-sqlite3';
import { digestOf } from '../src/format/digest.js';
import { imageId } from '../src/format/image-ref.js';
import { readFrameHeader } from '../src/format/lz4-frame.js';
import { type Manifest, manifestVolumes, parseManifestText } from '../src/format/manifest.js';
import type { Repository } from './repository.js';
import { absentObjects } from './store/presence.js';
import {
  CHUNKS_PREFIX,
  IMAGES_PREFIX,
  REPORTS_PREFIX,
  chunkKey,
  digestOfChunkKey,
  imageStateKey,
  manifestKey,
  parseManifestKey,
} from './store/store.js';

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
  const { catalog } = repository;
  const report: ReindexReport = { images: 0, objects: 0, skipped: [] };
  const { manifests, indexDigests } = await readManifests(repository, report);

  catalog.db.transaction(() => catalog.clearRebuildable())();
  await recordStoredObjects(repository, indexDigests, report);
  for (const entry of manifests) {
    await insertImage(repository, entry, report);
    report.images++;
  }
  await continueReportChain(repository);
  return report;
}

/** Rows written in transactions of BATCH rows, so a large store is not one row per commit. */
function batchWriter<Row>(db: Database.Database, write: (row: Row) => void): { add(row: Row): void; flush(): void } {
  const writeAll = db.transaction((rows: Row[]) => {
    for (const row of rows) write(row);
  });
  let rows: Row[] = [];
  const flush = () => {
    writeAll(rows);
    rows = [];
  };
  return {
    add(row) {
      rows.push(row);
      if (rows.length >= BATCH) flush();
    },
    flush,
  };
}

/** Offline: every stored object into the emptied catalog, with its sizes. */
async function recordStoredObjects(
  repository: Repository,
  indexDigests: Set<string>,
  report: ReindexReport,
): Promise<void> {
  const { store, catalog } = repository;
  const insert = catalog.db.prepare(
    'INSERT INTO objects (digest, kind, stored_size, raw_size, first_seen, last_touched) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const objects = batchWriter(catalog.db, (row: [Buffer, string, number, number, number, number]) => {
    insert.run(...row);
  });
  for await (const object of store.list(CHUNKS_PREFIX)) {
    const digest = digestOfChunkKey(object.key);
    if (!digest) continue;
    const rawSize = await rawSizeOf(repository, object.key, report);
    if (rawSize === null) continue;
    const kind = indexDigests.has(digest) ? 'index' : 'chunk';
    const when = Math.round(object.mtimeMs);
    objects.add([Buffer.from(digest, 'hex'), kind, object.size, rawSize, when, when]);
    report.objects++;
  }
  objects.flush();
}

async function reconcile(repository: Repository): Promise<ReindexReport> {
  const started = repository.clock.now();
  const report: ReindexReport = {
    images: 0,
    objects: 0,
    skipped: [],
    changes: { imagesAdded: 0, imagesDropped: 0, objectsAdded: 0, objectsDropped: 0 },
  };
  const { manifests, indexDigests } = await readManifests(repository, report);
  // What the store holds, in a scratch table so a large store does not sit in memory.
  const db = repository.catalog.db;
  db.exec(
    'CREATE TEMP TABLE IF NOT EXISTS reindex_listed (digest BLOB PRIMARY KEY, stored_size INTEGER NOT NULL, mtime INTEGER NOT NULL) WITHOUT ROWID; DELETE FROM temp.reindex_listed;',
  );
  try {
    await listStoredObjects(repository, report);
    await addUncataloguedObjects(repository, indexDigests, report);
    await dropLostObjects(repository, started, report);
  } finally {
    db.exec('DROP TABLE IF EXISTS temp.reindex_listed');
  }
  await reconcileImages(repository, manifests, started, report);
  return report;
}

/** Online: every key the store lists, into the scratch table. */
async function listStoredObjects(repository: Repository, report: ReindexReport): Promise<void> {
  const { db } = repository.catalog;
  const listed = db.prepare('INSERT OR IGNORE INTO temp.reindex_listed (digest, stored_size, mtime) VALUES (?, ?, ?)');
  const rows = batchWriter(db, (row: [Buffer, number, number]) => {
    listed.run(...row);
  });
  for await (const object of repository.store.list(CHUNKS_PREFIX)) {
    const digest = digestOfChunkKey(object.key);
    if (!digest) continue;
    rows.add([Buffer.from(digest, 'hex'), object.size, Math.round(object.mtimeMs)]);
    report.objects++;
  }
  rows.flush();
}

/** Stored objects the catalog does not know. INSERT OR IGNORE: an upload meanwhile wins. */
async function addUncataloguedObjects(
  repository: Repository,
  indexDigests: Set<string>,
  report: ReindexReport,
): Promise<void> {
  const { db } = repository.catalog;
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
    const rawSize = await rawSizeOf(repository, chunkKey(digest), report);
    if (rawSize === null) continue;
    const kind = indexDigests.has(digest) ? 'index' : 'chunk';
    report.changes!.objectsAdded += insert.run(row.digest, kind, row.size, rawSize, row.mtime, row.mtime).changes;
  }
}

/**
 * Rows whose file the listing did not see. Rows first written after the reindex began
 * are uploads in progress, and a second look spares a file that came back meanwhile.
 */
async function dropLostObjects(repository: Repository, started: number, report: ReindexReport): Promise<void> {
  const { catalog, store } = repository;
  const unseen = (
    catalog.db
      .prepare(
        'SELECT o.digest FROM objects o WHERE o.first_seen < ? AND NOT EXISTS (SELECT 1 FROM temp.reindex_listed l WHERE l.digest = o.digest)',
      )
      .all(started) as { digest: Buffer }[]
  ).map((row) => row.digest.toString('hex'));
  for (const digest of await absentObjects(store, unseen)) {
    catalog.forgetObject(digest);
    report.changes!.objectsDropped++;
  }
}

/** Images: add what the store has; drop rows whose manifest is gone (and stays gone). */
async function reconcileImages(
  repository: Repository,
  manifests: StoredManifest[],
  started: number,
  report: ReindexReport,
): Promise<void> {
  const { catalog, store } = repository;
  const changes = report.changes!;
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
}

/** Every manifest in the store, oldest first, and the indexes they name. */
async function readManifests(
  repository: Repository,
  report: ReindexReport,
): Promise<{ manifests: StoredManifest[]; indexDigests: Set<string> }> {
  const { store } = repository;
  const manifests: StoredManifest[] = [];
  const indexDigests = new Set<string>();
  for await (const object of store.list(IMAGES_PREFIX)) {
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
  const state = await store.get(imageStateKey(entry.machine, entry.timestamp)).catch(() => null);
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
  for await (const object of repository.store.list(REPORTS_PREFIX))
    if (!newest || object.key > newest) newest = object.key;
  if (newest) repository.catalog.setMeta('last_report_digest', digestOf(await repository.store.get(newest)));
}
