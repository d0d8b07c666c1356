// The repository's operations as plain functions over a store and a catalog: the
// HTTP routes only translate requests into these calls. Committing a manifest is the
// one step that makes an image exist.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../src/core/clock.js';
import {
  ConflictError,
  DigestMismatchError,
  ForbiddenError,
  FormatError,
  MissingObjectsError,
  NotFoundError,
  RepositoryFullError,
  UsageError,
} from '../src/core/errors.js';
import { MAX_CHUNK_SIZE } from '../src/format/chunk.js';
import { assertDigest, digestOf } from '../src/format/digest.js';
import { FixedIndex, MAX_INDEX_BYTES, decodeIndex } from '../src/format/fixed-index.js';
import { imageId, parseImageRef, timestampOf } from '../src/format/image-ref.js';
import { decodeFrame } from '../src/format/lz4-frame.js';
import {
  type Manifest,
  diskKeysOf,
  manifestVolumes,
  parseManifest,
  parseManifestText,
} from '../src/format/manifest.js';
import type { Logger } from '../src/core/log.js';
import { type Principal, requireMachineAccess, requireRole } from './auth.js';
import { Catalog, type ImageRecord, type ObjectKind, type SessionRecord } from './catalog/catalog.js';
import { writePrivateFile } from './private-file.js';
import { isStorageFull } from './storage-full.js';
import { LocalStore } from './store/local.js';
import { absentObjects } from './store/presence.js';
import { readStats } from './stats.js';
import { type ObjectStore, chunkKey, imageStateKey, manifestKey } from './store/store.js';

export const DEFAULT_LEASE_MS = 60 * 60 * 1000;
export const MAX_MISSING_BATCH = 10000;
/**
 * Uploads stop this short of a full disk. The rest is for what reads and restores still
 * write (tokens from restore codes, verification reports, image states, the catalog's
 * journal), so a repository filled by uploads keeps serving technicians and auditors.
 */
export const UPLOAD_RESERVE_BYTES = 8 << 20;
const MAX_REPORTED_MISSING = 1000;
const SESSION_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface SessionView {
  id: string;
  machine: string;
  state: SessionRecord['state'];
  parent: string | null;
  leaseExpiresAt: string;
  image: string | null;
}

export interface CommitResult {
  image: ImageRecord;
  manifestDigest: string;
  created: boolean;
}

export class Repository {
  /** Objects garbage collection is deleting: an upload of one waits until it is gone. */
  private readonly removals = new Map<string, Promise<void>>();
  /** Sets of running garbage collections: each receives what every image committed meanwhile references. */
  private readonly commitWatchers = new Set<Set<string>>();
  /** Objects being uploaded right now, with how many uploads of each: garbage collection spares them. */
  private readonly uploads = new Map<string, number>();

  constructor(
    readonly store: ObjectStore,
    readonly catalog: Catalog,
    readonly clock: Clock,
    readonly log: Logger,
    readonly leaseMs = DEFAULT_LEASE_MS,
  ) {}

  /** Open the repository in `directory`, creating it (and its admin token) on first use. */
  static async open(
    directory: string,
    options: { clock: Clock; log: Logger; leaseMs?: number },
  ): Promise<{ repository: Repository; newAdminToken: string | null }> {
    const store = await LocalStore.open(directory, options.clock);
    const catalog = new Catalog(path.join(store.root, 'catalog.sqlite'), options.clock);
    const repository = new Repository(store, catalog, options.clock, options.log, options.leaseMs);
    const newAdminToken = await repository.ensureAdminToken(path.join(store.root, 'admin.token'));
    return { repository, newAdminToken };
  }

  close(): void {
    this.catalog.close();
  }

  /**
   * On first start, create the admin token and keep it in `admin.token` (0600). A
   * catalog rebuilt without tokens re-registers the token kept in that file.
   */
  private async ensureAdminToken(tokenFile: string): Promise<string | null> {
    const hasAdmin = this.catalog.listTokens().some((token) => token.role === 'admin' && token.revokedAt === null);
    if (hasAdmin) return null;
    let existing: string | null = null;
    try {
      existing = (await fs.readFile(tokenFile, 'utf8')).trim() || null;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (existing) {
      if (!this.catalog.tokenBySecret(existing))
        this.catalog.createToken({ role: 'admin', label: 'admin.token', secret: existing });
      return null;
    }
    const { secret } = this.catalog.createToken({ role: 'admin', label: 'first start' });
    await writePrivateFile(tokenFile, `${secret}\n`);
    return secret;
  }

  // --- sessions -------------------------------------------------------------

  private view(session: SessionRecord): SessionView {
    return {
      id: session.id,
      machine: session.machine,
      state: session.state,
      parent: session.parent,
      leaseExpiresAt: new Date(session.leaseExpiresAt).toISOString(),
      image: session.imageId,
    };
  }

  private sessionFor(principal: Principal, id: string): SessionRecord {
    requireRole(principal, 'admin', 'machine');
    if (!SESSION_ID_PATTERN.test(id)) throw new UsageError(`session id ${JSON.stringify(id)} is not a UUID`);
    const session = this.catalog.session(id);
    if (!session) throw new NotFoundError(`upload session ${id} does not exist`);
    requireMachineAccess(principal, session.machine, 'write');
    return session;
  }

  private openSessionFor(principal: Principal, id: string): SessionRecord {
    const session = this.sessionFor(principal, id);
    if (session.state !== 'open') {
      throw new ConflictError(`upload session ${id} is ${session.state}`, { details: { session: this.view(session) } });
    }
    return session;
  }

  /**
   * Open a session with a client-chosen id, or return the existing one: the client
   * resumes after a crash by opening the same id again.
   */
  openSession(principal: Principal, request: { id: string; machine: string; parent?: string | null }): SessionView {
    requireRole(principal, 'admin', 'machine');
    if (!SESSION_ID_PATTERN.test(request.id))
      throw new UsageError(`session id ${JSON.stringify(request.id)} is not a UUID`);
    requireMachineAccess(principal, request.machine, 'write');
    const existing = this.catalog.session(request.id);
    if (existing) {
      if (existing.machine !== request.machine)
        throw new ForbiddenError(`session ${request.id} belongs to another machine`);
      if (existing.state === 'open') this.catalog.renewLease(existing.id, this.leaseMs);
      this.log.info({ session: existing.id, machine: existing.machine, state: existing.state }, 'session resumed');
      return this.view(this.catalog.session(existing.id)!);
    }
    const session = this.catalog.createSession({
      id: request.id,
      machine: request.machine,
      tokenId: principal.tokenId,
      parent: request.parent ?? null,
      leaseMs: this.leaseMs,
    });
    this.catalog.machineSeen(request.machine);
    this.log.info({ session: session.id, machine: session.machine }, 'session opened');
    return this.view(session);
  }

  heartbeat(principal: Principal, id: string): SessionView {
    const session = this.sessionFor(principal, id);
    if (session.state === 'open') this.catalog.renewLease(id, this.leaseMs);
    this.catalog.machineSeen(session.machine);
    return this.view(this.catalog.session(id)!);
  }

  abortSession(principal: Principal, id: string): SessionView {
    const session = this.sessionFor(principal, id);
    if (session.state === 'committed')
      throw new ConflictError(`upload session ${id} is already committed as ${session.imageId}`);
    this.catalog.abortSession(id);
    this.log.info({ session: id, machine: session.machine }, 'session aborted');
    return this.view(this.catalog.session(id)!);
  }

  /**
   * Which of `digests` must the client send? See Catalog.missingObjects for who sees what.
   * Answered from the catalog alone: a stat per chunk of every upload would cost more
   * than the rare lost file, which the commit finds (requireStored) and which
   * verification forgets, so that this answer asks for it from then on.
   */
  missing(principal: Principal, sessionId: string, digests: unknown): string[] {
    const session = this.openSessionFor(principal, sessionId);
    if (!Array.isArray(digests)) throw new FormatError('body.digests must be an array of digests');
    if (digests.length > MAX_MISSING_BATCH)
      throw new FormatError(`at most ${MAX_MISSING_BATCH} digests per request, got ${digests.length}`);
    const checked = digests.map((digest, position) => assertDigest(digest, `digests[${position}]`));
    this.catalog.renewLease(sessionId, this.leaseMs);
    return this.catalog.missingObjects(checked, {
      machine: principal.role === 'admin' ? null : session.machine,
      sessionId,
    });
  }

  /**
   * Receive one chunk or index as an LZ4 frame: decompress, re-hash, and store it only
   * if it is exactly what its name says. An existing object is only touched.
   */
  async putObject(
    principal: Principal,
    sessionId: string,
    kind: ObjectKind,
    digestText: string,
    frame: Buffer,
  ): Promise<{ digest: string; created: boolean }> {
    const session = this.openSessionFor(principal, sessionId);
    const digest = assertDigest(digestText, `${kind} name`);
    const what = `${kind} ${digest}`;
    // Only the canonical frame is stored, so every object reads back the one documented way.
    const data = decodeFrame(frame, kind === 'chunk' ? MAX_CHUNK_SIZE : MAX_INDEX_BYTES, what, { canonical: true });
    const actual = digestOf(data);
    if (actual !== digest) throw new DigestMismatchError(digest, actual, `${what} (nothing was stored)`);
    if (kind === 'index') FixedIndex.parse(data, what);
    for (let removal = this.removals.get(digest); removal; removal = this.removals.get(digest)) await removal;
    // Nothing awaits between the last removal check and this: a collection either removed
    // the file before (the upload writes it anew) or sees the upload and spares the object.
    // Without it, an existing file could be found and touched, then removed, and the
    // upload answered as stored.
    this.uploads.set(digest, (this.uploads.get(digest) ?? 0) + 1);
    let created: boolean;
    let machineSawIt: boolean | null;
    try {
      await this.keepReserve(chunkKey(digest), frame.length);
      // Asked before the object is pinned to the session, which makes it readable.
      machineSawIt = principal.role === 'admin' ? null : this.catalog.machineMayRead(session.machine, digest);
      ({ created } = await this.store.put(chunkKey(digest), frame, { ifAbsent: true }));
      this.catalog.recordObject(digest, kind, frame.length, data.length, sessionId);
    } finally {
      const left = (this.uploads.get(digest) ?? 1) - 1;
      if (left) this.uploads.set(digest, left);
      else this.uploads.delete(digest);
    }
    this.catalog.renewLease(sessionId, this.leaseMs);
    await this.repairImagesLacking(digest);
    // A machine learns only whether the object is new to its own view of the repository:
    // one that only other machines hold answers exactly like one nobody holds, or the
    // answer would tell it what others store (DESIGN.md decision 7).
    return { digest, created: created || machineSawIt === false };
  }

  /** An object that verification found lost or corrupt is stored again: images that lacked only such objects are whole again. */
  private async repairImagesLacking(digest: string): Promise<void> {
    for (const id of this.catalog.repairDamage(digest)) {
      await this.recordImageState(id, 'ok', null, { repairedAt: new Date(this.clock.now()).toISOString() });
      this.log.info({ image: id, digest }, 'image whole again: the objects it lacked were uploaded');
    }
  }

  /** An image's state in the catalog and a copy beside its manifest in the store, so a reindex keeps it. */
  async recordImageState(
    id: string,
    state: ImageRecord['state'],
    reason: string | null,
    note: Record<string, unknown>,
  ): Promise<void> {
    const image = this.catalog.image(id);
    if (!image) return;
    const damaged = this.catalog.imageDamage(id);
    const document = { state, reason, ...note, ...(damaged.length ? { damagedObjects: damaged } : {}) };
    try {
      this.catalog.setImageState(id, state, reason);
      await this.store.put(
        imageStateKey(image.machine, image.timestamp),
        Buffer.from(`${JSON.stringify(document, null, 2)}\n`),
      );
    } catch (error) {
      // Verification still reports on a full repository; the state waits for its next run.
      if (!isStorageFull(error)) throw error;
      this.log.error({ image: id, err: error }, 'the repository is full: the image state was not stored');
    }
  }

  private async keepReserve(key: string, bytes: number): Promise<void> {
    const free = await this.store.freeBytes().catch(() => null);
    if (free === null || free - bytes >= UPLOAD_RESERVE_BYTES) return;
    // An object already stored is only touched: that costs no space.
    if (await this.store.stat(key)) return;
    throw new RepositoryFullError(
      `no space left on the repository's storage for uploads: ${Math.floor(free / 1024)} KiB free, the last ${UPLOAD_RESERVE_BYTES >> 20} MiB are kept for restores and verification`,
      { details: { freeBytes: free } },
    );
  }

  /** Load an index object from the store and check it against the volume that names it. */
  async loadIndex(digest: string, what = `index ${digest}`): Promise<FixedIndex> {
    return decodeIndex(await this.store.get(chunkKey(digest)), digest, what);
  }

  /**
   * Make an image exist: the manifest is checked, every object it references is found
   * present, the manifest is written under a server-assigned time, and the catalog records
   * the image. Committing a committed session again answers with the image it made.
   */
  async commit(principal: Principal, sessionId: string, body: unknown): Promise<CommitResult> {
    const session = this.sessionFor(principal, sessionId);
    const earlier = this.earlierCommit(session);
    if (earlier) return earlier;
    // The pins taken below last as long as the lease: a commit is activity of the session.
    this.catalog.renewLease(sessionId, this.leaseMs);
    const committed = this.manifestToCommit(session, body);
    const scope = { machine: principal.role === 'admin' ? null : session.machine, sessionId };
    const { indexDigests, chunkDigests } = await this.requireReferencedObjects(session, committed, scope);
    const { timestamp, when, bytes } = await this.writeManifest(committed);
    const manifestDigest = digestOf(bytes);
    const storedBytes = this.sessionStoredBytes(sessionId);
    const record = this.imageRecordOf(committed, timestamp, when, manifestDigest, storedBytes);
    const referenced = [...indexDigests, ...chunkDigests];
    // insertImage drops the session's pins; a running collection may have marked before
    // this image existed, so it learns the image's objects in the same synchronous step.
    for (const watcher of this.commitWatchers) for (const digest of referenced) watcher.add(digest);
    try {
      this.catalog.insertImage(record, referenced, sessionId);
    } catch (error) {
      // Uncatalogued, the manifest would be an image nobody was told of (reindex would list it).
      await this.store.remove(manifestKey(committed.machine, timestamp)).catch(() => undefined);
      throw error;
    }
    this.log.info({ session: sessionId, image: record.id, chunks: chunkDigests.size, storedBytes }, 'image committed');
    return { image: this.catalog.image(record.id)!, manifestDigest, created: true };
  }

  /** The image a committed session made (a client retrying its commit), or null for an open session. */
  private earlierCommit(session: SessionRecord): CommitResult | null {
    if (session.state === 'committed' && session.imageId) {
      const image = this.catalog.image(session.imageId);
      if (image) return { image, manifestDigest: image.manifestDigest, created: false };
    }
    if (session.state !== 'open') throw new ConflictError(`upload session ${session.id} is ${session.state}`);
    return null;
  }

  /** The client's manifest, checked against its session, with the parent it is committed with. */
  private manifestToCommit(session: SessionRecord, body: unknown): Manifest {
    const manifest = parseManifest(body);
    if (manifest.id !== undefined || manifest.createdAt !== undefined) {
      throw new FormatError(
        'invalid manifest: /id and /createdAt are assigned by the server at commit; leave them out',
      );
    }
    if (manifest.machine !== session.machine)
      throw new FormatError(`invalid manifest: /machine is ${manifest.machine}, the session is for ${session.machine}`);
    return { ...manifest, ...this.parentAtCommit(session, manifest) } as Manifest;
  }

  /**
   * Every index, then every chunk every index names, must be present and visible: in
   * the catalog, then in the store itself. The catalog check also pins each object to
   * the session and touches it, so garbage collection spares them from here until the
   * image exists. That covers the chunks the client skipped because its base image
   * held them (it never names those before the commit): if the base was deleted and
   * collected meanwhile, they are reported missing here and the client sends them.
   */
  private async requireReferencedObjects(
    session: SessionRecord,
    manifest: Manifest,
    scope: { machine: string | null; sessionId: string },
  ): Promise<{ indexDigests: string[]; chunkDigests: Set<string> }> {
    const indexDigests = [...new Set([...manifestVolumes(manifest)].map(({ volume }) => volume.index))];
    const missingIndexes = this.catalog.missingObjects(indexDigests, scope);
    if (missingIndexes.length) throw this.missingError(missingIndexes, 'index');
    await this.requireStored(session, indexDigests, 'index');
    const chunkDigests = await this.chunksReferenced(manifest);
    const all = [...chunkDigests];
    const missingChunks: string[] = [];
    for (let start = 0; start < all.length; start += MAX_MISSING_BATCH) {
      missingChunks.push(...this.catalog.missingObjects(all.slice(start, start + MAX_MISSING_BATCH), scope));
    }
    if (missingChunks.length) throw this.missingError(missingChunks, 'chunk');
    await this.requireStored(session, all, 'chunk');
    return { indexDigests, chunkDigests };
  }

  /** The distinct chunks the manifest's indexes name, each index checked against its volume. */
  private async chunksReferenced(manifest: Manifest): Promise<Set<string>> {
    const chunkDigests = new Set<string>();
    for (const { disk, volume } of manifestVolumes(manifest)) {
      const index = await this.loadIndex(volume.index, `index ${volume.index} of volume ${disk.id}/${volume.id}`);
      if (index.chunkSize !== volume.chunkSize || index.volumeSize !== volume.size) {
        throw new FormatError(
          `invalid manifest: volume ${disk.id}/${volume.id} says ${volume.size} bytes in ${volume.chunkSize}-byte chunks, its index says ${index.volumeSize} in ${index.chunkSize}`,
        );
      }
      for (const digest of index.distinctDigests()) chunkDigests.add(digest);
    }
    return chunkDigests;
  }

  /**
   * The server owns time: the image's name is the moment it is committed, a second later
   * for each image of the machine that already holds that name (in the catalog or the store).
   */
  private async writeManifest(committed: Manifest): Promise<{ timestamp: string; when: number; bytes: Buffer }> {
    const { machine } = committed;
    let when = this.clock.now();
    for (;;) {
      while (this.catalog.imageIdTaken(machine, timestampOf(new Date(when)))) when += 1000;
      const timestamp = timestampOf(new Date(when));
      const bytes = manifestBytesOf(committed, imageId(machine, timestamp), new Date(when).toISOString());
      const { created } = await this.store.put(manifestKey(machine, timestamp), bytes, { ifAbsent: true });
      if (created) return { timestamp, when, bytes };
      when += 1000;
    }
  }

  /**
   * The parent the image is committed with. A parent deleted while the image uploaded
   * (by an admin or retention) does not make the image wrong: every image is complete
   * on its own, the parent only says which image the client compared with. It is then
   * dropped and the manifest says why; a parent the session was not opened with must
   * still be an image of the machine.
   */
  private parentAtCommit(session: SessionRecord, manifest: Manifest): Pick<Manifest, 'parent' | 'warnings'> {
    const unchanged = { parent: manifest.parent, warnings: manifest.warnings };
    if (manifest.parent === null) return unchanged;
    const parent = this.catalog.image(manifest.parent);
    if (parent && parent.machine === manifest.machine) return unchanged;
    if (parent || manifest.parent !== session.parent) {
      throw new FormatError(
        `invalid manifest: /parent names ${manifest.parent}, which is not an image of ${manifest.machine}`,
      );
    }
    this.log.warn(
      { session: session.id, parent: manifest.parent },
      'parent image was deleted during the upload; committing without it',
    );
    return {
      parent: null,
      warnings: [
        ...manifest.warnings,
        `parent image ${manifest.parent} was deleted while this image was uploading; this image is complete without it`,
      ],
    };
  }

  /**
   * The catalog can outlive a lost file, so before an image exists every object it
   * references is looked up in the store itself (DESIGN.md decision 11). Objects first
   * recorded while this session was open were written moments ago (temp file, sync,
   * link, by this session or a concurrent one) and are taken as present; every other
   * one is stat'ed, a bounded number at a time (the cost is measured in
   * docs/benchmarks.md). Absent ones are forgotten, so `missing` asks for them again,
   * and the commit is refused naming them: the client sends them and commits again.
   */
  private async requireStored(session: SessionRecord, digests: string[], kind: ObjectKind): Promise<void> {
    const absent = await absentObjects(this.store, this.catalog.recordedBefore(digests, session.createdAt));
    if (absent.length === 0) return;
    for (const digest of absent) this.catalog.forgetObject(digest);
    this.log.warn(
      { kind, absent: absent.length, first: absent[0] },
      'the catalog listed objects the store has lost; they are asked for again',
    );
    throw this.missingError(absent, kind);
  }

  private sessionStoredBytes(sessionId: string): number {
    const row = this.catalog.db
      .prepare(
        `SELECT COALESCE(SUM(o.stored_size), 0) AS bytes FROM session_objects so JOIN objects o ON o.digest = so.digest
         JOIN sessions s ON s.id = so.session_id WHERE so.session_id = ? AND o.first_seen >= s.created_at`,
      )
      .get(sessionId) as { bytes: number };
    return row.bytes;
  }

  imageRecordOf(
    manifest: Manifest,
    timestamp: string,
    createdAt: number,
    manifestDigest: string,
    storedBytes: number,
  ): Omit<ImageRecord, 'state' | 'stateReason'> {
    return {
      id: imageId(manifest.machine, timestamp),
      machine: manifest.machine,
      timestamp,
      createdAt,
      manifestDigest,
      parent: manifest.parent,
      diskKeys: manifest.disks.flatMap(diskKeysOf),
      sizeBytes: manifest.disks.reduce((sum, disk) => sum + disk.size, 0),
      usedBytes: manifest.stats.bytesUsed,
      uploadedBytes: manifest.stats.bytesUploaded,
      storedBytes,
    };
  }

  private missingError(missing: string[], kind: ObjectKind): MissingObjectsError {
    return new MissingObjectsError(
      `the repository lacks ${missing.length} ${kind}${missing.length === 1 ? '' : 's'} this image references, first ${missing[0]}; nothing was committed`,
      {
        details: {
          kind,
          digest: missing[0],
          missing: missing.slice(0, MAX_REPORTED_MISSING),
          missingCount: missing.length,
        },
      },
    );
  }

  // --- images ---------------------------------------------------------------

  /** Resolve an image id (`machine@timestamp`, `machine@latest`, or a unique prefix). */
  resolveImage(principal: Principal, reference: string): ImageRecord {
    const { machine, selector } = parseImageRef(reference);
    requireMachineAccess(principal, machine, 'metadata');
    return this.catalog.resolveImage(machine, selector);
  }

  listImages(principal: Principal, machine?: string): ImageRecord[] {
    if (principal.role === 'machine' || principal.role === 'restore') {
      if (machine && machine !== principal.machine) requireMachineAccess(principal, machine, 'metadata');
      return this.catalog.listImages(principal.machine!);
    }
    return this.catalog.listImages(machine);
  }

  listMachines(principal: Principal): ReturnType<Catalog['listMachines']> {
    const machines = this.catalog.listMachines();
    if (principal.role === 'machine' || principal.role === 'restore')
      return machines.filter((machine) => machine.name === principal.machine);
    return machines;
  }

  async manifestBytes(principal: Principal, reference: string): Promise<{ image: ImageRecord; bytes: Buffer }> {
    const image = this.resolveImage(principal, reference);
    const bytes = await this.store.get(manifestKey(image.machine, image.timestamp));
    return { image, bytes };
  }

  async manifest(principal: Principal, reference: string): Promise<{ image: ImageRecord; manifest: Manifest }> {
    const { image, bytes } = await this.manifestBytes(principal, reference);
    return { image, manifest: parseManifestText(bytes.toString('utf8'), `manifest of ${image.id}`) };
  }

  /**
   * The latest image of `machine` that holds one of the given disks and is fit to be
   * the base of an incremental image (its verification has not failed).
   */
  baseImage(principal: Principal, machine: string, diskKeys: string[]): ImageRecord | null {
    requireMachineAccess(principal, machine, 'write');
    const wanted = new Set(diskKeys);
    const images = this.catalog.listImages(machine).filter((image) => image.state === 'ok');
    for (let position = images.length - 1; position >= 0; position--) {
      if (images[position]!.diskKeys.some((key) => wanted.has(key))) return images[position]!;
    }
    return null;
  }

  /** Read a stored object's frame; auditors may read indexes but never chunk content. */
  async objectFrame(principal: Principal, kind: ObjectKind, digestText: string): Promise<Buffer> {
    const digest = assertDigest(digestText, `${kind} name`);
    if (principal.role === 'auditor' && kind === 'chunk')
      throw new ForbiddenError('an auditor token cannot download chunk content');
    const info = this.catalog.objectInfo(digest);
    if (!info || info.kind !== kind) throw new NotFoundError(`${kind} ${digest} is not in the repository`);
    if (
      (principal.role === 'machine' || principal.role === 'restore') &&
      !this.catalog.machineMayRead(principal.machine!, digest)
    ) {
      // Same answer as absent: a machine must not learn what other machines hold.
      throw new NotFoundError(`${kind} ${digest} is not in the repository`);
    }
    const frame = await this.store.get(chunkKey(digest));
    if (kind === 'chunk') {
      readStats.chunksServed++;
      readStats.chunkBytesServed += frame.length;
    }
    return frame;
  }

  async deleteImage(principal: Principal, reference: string): Promise<ImageRecord> {
    requireRole(principal, 'admin');
    const image = this.resolveImage(principal, reference);
    await this.removeImage(image);
    return image;
  }

  /** Remove an image (its manifest and recorded state); its chunks stay until garbage collection. */
  async removeImage(image: ImageRecord): Promise<void> {
    await this.store.remove(manifestKey(image.machine, image.timestamp));
    await this.store.remove(imageStateKey(image.machine, image.timestamp));
    this.catalog.deleteImage(image.id);
    this.log.info({ image: image.id }, 'image deleted');
  }

  /** Is an upload of this object under way (between its removal check and its catalog record)? */
  isBeingUploaded(digest: string): boolean {
    return this.uploads.has(digest);
  }

  /**
   * Until the returned function is called, add to `referenced` every object an image
   * committed from now on references. Garbage collection needs it: its mark lists the
   * images once, and an upload session's pins and touches end when its image is
   * recorded, which may be after that listing and long after the touches (a slow
   * commit), so neither the pins nor the grace period would spare those objects.
   */
  watchCommits(referenced: Set<string>): () => void {
    this.commitWatchers.add(referenced);
    return () => this.commitWatchers.delete(referenced);
  }

  /**
   * Delete a stored object whose catalog row garbage collection has just removed. The
   * removal is registered before the first await, so an upload of the same digest that
   * arrives meanwhile waits and then stores it afresh.
   */
  async removeObjectFile(digest: string): Promise<void> {
    let finished!: () => void;
    this.removals.set(digest, new Promise<void>((resolve) => (finished = resolve)));
    try {
      await this.store.remove(chunkKey(digest));
    } finally {
      this.removals.delete(digest);
      finished();
    }
  }
}

/** The committed manifest's bytes, its fields in the documented order. */
function manifestBytesOf(committed: Manifest, id: string, createdAt: string): Buffer {
  const ordered: Manifest = {
    format: committed.format,
    version: committed.version,
    machine: committed.machine,
    id,
    createdAt,
    parent: committed.parent,
    client: committed.client,
    disks: committed.disks,
    stats: committed.stats,
    warnings: committed.warnings,
  };
  return Buffer.from(`${JSON.stringify(ordered, null, 2)}\n`);
}
