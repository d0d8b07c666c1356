// Capture of a whole image: find the base image of each disk, open (or resume) an
// upload session, capture every volume, upload the indexes, and commit the manifest.
// A commit refused for missing chunks is repaired by re-reading just those chunks.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import type { CaptureRepository } from '../../src/client/ports.js';
import { SessionStateFile } from '../../src/client/session-state.js';
import {
  FormatError,
  InterruptedError,
  MissingObjectsError,
  RepositoryFullError,
  UserError,
} from '../../src/core/errors.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import { digestOf } from '../../src/format/digest.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import {
  type Disk,
  type ImageStats,
  type Manifest,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type PartitionTable,
  type Volume,
  diskKeysOf,
} from '../../src/format/manifest.js';
import { silentLogger, type Logger } from '../../src/core/log.js';
import { VERSION } from '../../src/core/version.js';
import { CompressPool } from './compress-pool.js';
import { DigestKeySet } from './digest-set.js';
import { Uploader } from './uploader.js';
import { type CaptureContext, SlotPool, type VolumePlan, captureVolume, digestKey, readChunkInto } from './volume.js';

export interface DiskPlan {
  id: string;
  source: string;
  sourceKind: Disk['sourceKind'];
  size: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  model: string | null;
  serial: string | null;
  partitionTable: PartitionTable;
  volumes: VolumePlan[];
  /** Things about the whole disk the user should know (a damaged table, LVM...). */
  warnings?: string[];
}

export interface CaptureProgress {
  bytesDone: number;
  bytesTotal: number;
  bytesUploaded: number;
}

export interface VolumeHooks {
  /** Called before a volume is read (fsfreeze goes here); the returned function after. */
  beforeVolume?(disk: DiskPlan, volume: VolumePlan): Promise<(() => Promise<void>) | void>;
}

export interface CaptureOptions extends VolumeHooks {
  client: CaptureRepository;
  machine: string;
  disks: DiskPlan[];
  stateDirectory: string;
  log?: Logger;
  threads?: number;
  onProgress?(progress: CaptureProgress): void;
  onStage?(stage: string): void;
  signal?: AbortSignal;
  /** Ignore the base image: compare every chunk with the server instead. */
  full?: boolean;
}

export interface CaptureReport extends ImageStats {
  image: string;
  manifestDigest: string;
  parent: string | null;
  session: string;
  resumed: boolean;
  volumes: {
    disk: string;
    volume: string;
    method: Volume['method'];
    filesystem: string | null;
    size: number;
    bytesUsed: number;
    bytesUploaded: number;
    chunksUploaded: number;
    chunksReused: number;
    holes: number;
    contentDigest: string;
  }[];
  warnings: string[];
}

interface BaseDigests {
  image: string | null;
  keys: DigestKeySet;
  indexes: Set<string>;
}

/** The digests of the previous image of these disks: what need not be sent again. */
async function loadBase(
  client: CaptureRepository,
  machine: string,
  disks: DiskPlan[],
  log: Logger,
): Promise<BaseDigests> {
  const base: BaseDigests = { image: null, keys: new DigestKeySet(), indexes: new Set() };
  const manifests = new Map<string, Manifest>();
  for (const disk of disks) {
    const keys = diskKeysOf(disk);
    const image = await client.baseImage(machine, keys);
    if (!image) continue;
    base.image ??= image.id;
    if (!manifests.has(image.id)) manifests.set(image.id, (await client.manifest(image.id)).manifest);
    const manifest = manifests.get(image.id)!;
    const wanted = new Set(keys);
    const previous = manifest.disks.find((candidate) => diskKeysOf(candidate).some((key) => wanted.has(key)));
    if (!previous) continue;
    for (const volume of previous.volumes) {
      base.indexes.add(volume.index);
      try {
        const index = await client.index(volume.index);
        for (let position = 0; position < index.chunkCount; position++) {
          const digest = index.get(position);
          if (digest) base.keys.add(digestKey(digest));
        }
      } catch (error) {
        log.warn(
          { image: image.id, index: volume.index, error: (error as Error).message },
          'base index unreadable; its chunks will be compared with the server',
        );
      }
    }
  }
  return base;
}

function emptyStats(): ImageStats {
  return {
    bytesRead: 0,
    bytesUsed: 0,
    bytesUploaded: 0,
    chunksTotal: 0,
    chunksHoles: 0,
    chunksUploaded: 0,
    chunksReused: 0,
    durationMs: 0,
  };
}

export async function captureImage(options: CaptureOptions): Promise<CaptureReport> {
  const log = options.log ?? silentLogger;
  const started = Date.now();
  const startedAt = new Date().toISOString();
  const { client, machine } = options;
  const stateFile = new SessionStateFile(
    options.stateDirectory,
    client.server,
    machine,
    options.disks.map((disk) => disk.source),
  );

  options.onStage?.('looking up the previous image');
  const base = options.full
    ? { image: null, keys: new DigestKeySet(), indexes: new Set<string>() }
    : await loadBase(client, machine, options.disks, log);

  // Resume the session of an interrupted run, or start a new one.
  const saved = await stateFile.load();
  let sessionId = saved?.sessionId ?? randomUUID();
  let session = await client.openSession(sessionId, machine, base.image);
  let resumed = saved !== null && session.state === 'open';
  if (session.state !== 'open') {
    sessionId = randomUUID();
    session = await client.openSession(sessionId, machine, base.image);
    resumed = false;
  }
  await stateFile.save({
    sessionId,
    server: client.server,
    machine,
    sources: options.disks.map((disk) => disk.source),
    createdAt: startedAt,
  });
  if (resumed) log.info({ session: sessionId }, 'resuming an interrupted upload session');
  const heartbeat = setInterval(() => {
    client.heartbeat(sessionId).catch((error: Error) => log.warn({ error: error.message }, 'heartbeat failed'));
  }, 60_000);
  heartbeat.unref();

  const chunkSize = Math.max(...options.disks.flatMap((disk) => disk.volumes.map((volume) => volume.chunkSize)));
  const pool = new CompressPool(options.threads);
  const slots = new SlotPool(chunkSize, pool.threads * 3 + 2);
  const uploader = new Uploader(client, sessionId);
  const bytesTotal = options.disks.reduce(
    (sum, disk) => sum + disk.volumes.reduce((inner, volume) => inner + volume.readable.totalBytes, 0),
    0,
  );
  let bytesDone = 0;
  const seen = new DigestKeySet();
  const captured: { disk: DiskPlan; plan: VolumePlan; volume: Volume; index: FixedIndex }[] = [];

  try {
    for (const disk of options.disks) {
      const handle = await fs.open(disk.source, 'r');
      try {
        for (const plan of disk.volumes) {
          options.onStage?.(`reading ${disk.source} ${plan.id}`);
          const after = await options.beforeVolume?.(disk, plan);
          try {
            if (after) await plan.refresh?.();
            const context: CaptureContext = {
              handle,
              source: disk.source,
              pool,
              slots,
              uploader,
              base: base.keys,
              seen,
              signal: options.signal,
              onProgress: (bytes) => {
                bytesDone += bytes;
                options.onProgress?.({ bytesDone, bytesTotal, bytesUploaded: uploader.stats.bytesUploaded });
              },
            };
            const { volume, index } = await captureVolume(context, plan);
            captured.push({ disk, plan, volume, index });
          } finally {
            if (after) await after();
          }
        }
      } finally {
        await handle.close();
      }
    }
    options.onStage?.('finishing uploads');
    await uploader.drain();

    options.onStage?.('uploading indexes');
    const indexes = new Map<string, Buffer>();
    for (const { index, volume } of captured)
      if (!base.indexes.has(volume.index)) indexes.set(volume.index, index.encode());
    const missingIndexes = new Set(indexes.size ? await client.missing(sessionId, [...indexes.keys()]) : []);
    for (const [digest, bytes] of indexes)
      if (missingIndexes.has(digest)) await client.putIndex(sessionId, digest, encodeFrame(bytes));

    const stats = emptyStats();
    const disks: Disk[] = options.disks.map((disk) => ({
      id: disk.id,
      source: disk.source,
      sourceKind: disk.sourceKind,
      size: disk.size,
      logicalSectorSize: disk.logicalSectorSize,
      physicalSectorSize: disk.physicalSectorSize,
      model: disk.model,
      serial: disk.serial,
      partitionTable: disk.partitionTable,
      volumes: captured.filter((entry) => entry.disk === disk).map((entry) => entry.volume),
    }));
    for (const { volume } of captured) {
      stats.bytesRead += volume.stats.bytesRead;
      stats.bytesUsed += volume.stats.bytesUsed;
      stats.bytesUploaded += volume.stats.bytesUploaded;
      stats.chunksTotal += volume.stats.chunks;
      stats.chunksHoles += volume.stats.holes;
      stats.chunksUploaded += volume.stats.chunksUploaded;
      stats.chunksReused += volume.stats.chunksReused;
    }
    const warnings = [
      ...options.disks.flatMap((disk) => disk.warnings ?? []),
      ...captured.flatMap(({ volume }) => volume.warnings),
    ];
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      machine,
      parent: base.image,
      client: {
        version: VERSION,
        hostname: os.hostname(),
        startedAt: startedAt.replace(/\.\d{3}Z$/, 'Z'),
        finishedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
      disks,
      stats: { ...stats, durationMs: Date.now() - started },
      warnings,
    };

    options.onStage?.('committing');
    const committed = await commitWithRepair(client, sessionId, manifest, captured, indexes, log);
    await stateFile.clear();
    return {
      image: committed.image.id,
      manifestDigest: committed.manifestDigest,
      parent: base.image,
      session: sessionId,
      resumed,
      ...stats,
      durationMs: Date.now() - started,
      volumes: captured.map(({ disk, volume }) => ({
        disk: disk.id,
        volume: volume.id,
        method: volume.method,
        filesystem: volume.filesystem?.type ?? null,
        size: volume.size,
        bytesUsed: volume.stats.bytesUsed,
        bytesUploaded: volume.stats.bytesUploaded,
        chunksUploaded: volume.stats.chunksUploaded,
        chunksReused: volume.stats.chunksReused,
        holes: volume.stats.holes,
        contentDigest: volume.contentDigest,
      })),
      warnings,
    };
  } catch (error) {
    if (options.signal?.aborted) {
      throw new InterruptedError(
        `interrupted: nothing was committed; upload session ${sessionId} is kept and the upload resumes on the next run of the same command`,
        { cause: error },
      );
    }
    if (error instanceof RepositoryFullError) {
      // The session stays open and the state file stays: a rerun resumes the upload.
      throw new RepositoryFullError(
        `${error.message}; nothing was committed; free space or prune, then run again — the upload resumes (session ${sessionId})`,
        { cause: error, details: error.details },
      );
    }
    if (error instanceof UserError) throw error;
    throw error;
  } finally {
    clearInterval(heartbeat);
    await pool.close();
  }
}

/**
 * Commit; if the server lacks chunks the base image was thought to hold (pruned since,
 * or a rare key collision), read those chunks again, send them and commit again.
 */
async function commitWithRepair(
  client: CaptureRepository,
  sessionId: string,
  manifest: Manifest,
  captured: { disk: DiskPlan; plan: VolumePlan; index: FixedIndex }[],
  indexes: Map<string, Buffer>,
  log: Logger,
): Promise<{ image: { id: string }; manifestDigest: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.commit(sessionId, manifest);
    } catch (error) {
      if (!(error instanceof MissingObjectsError) || attempt >= 5) throw error;
      const details = error.details as { kind?: string; missing?: string[] };
      const missing = new Set(details.missing ?? []);
      log.warn({ missing: missing.size, kind: details.kind }, 'server lacks objects the base image held; sending them');
      let sent = 0;
      for (const { index } of captured) {
        const digest = digestOf(index.encode());
        if (missing.has(digest)) {
          await client.putIndex(sessionId, digest, encodeFrame(indexes.get(digest) ?? index.encode()));
          missing.delete(digest);
          sent++;
        }
      }
      if (missing.size) {
        for (const { disk, plan, index } of captured) {
          const handle = await fs.open(disk.source, 'r');
          try {
            for (let position = 0; position < index.chunkCount && missing.size; position++) {
              const digest = index.get(position);
              if (!digest || !missing.has(digest)) continue;
              const chunkStart = position * plan.chunkSize;
              const bytes = Buffer.alloc(index.chunkLength(position));
              await readChunkInto(
                handle,
                plan,
                plan.readable.cursor().within(chunkStart, chunkStart + bytes.length),
                chunkStart,
                bytes,
                `${disk.source} volume ${plan.id}`,
              );
              const actual = digestOf(bytes);
              if (actual !== digest)
                throw new FormatError(
                  `${disk.source} changed while it was being imaged: chunk at byte ${plan.offset + chunkStart} now hashes to ${actual}; image again`,
                );
              await client.putChunk(sessionId, digest, encodeFrame(bytes));
              missing.delete(digest);
              sent++;
            }
          } finally {
            await handle.close();
          }
        }
      }
      if (sent === 0) throw error;
    }
  }
}
