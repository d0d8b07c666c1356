// The server's catalog: an embedded SQLite database of machines, hashed tokens,
// upload sessions with leases, stored objects and images. Everything but tokens and
// sessions can be rebuilt from the store alone (see reindex.ts).
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import type { Clock } from '../../src/core/clock.js';
import { ConflictError, NotFoundError, UsageError } from '../../src/core/errors.js';
import type { ImageInfo } from '../../src/client/ports.js';
import { isStorageFull } from '../storage-full.js';

export type Role = 'admin' | 'machine' | 'auditor' | 'restore';
export type SessionState = 'open' | 'committed' | 'aborted';
export type ImageState = 'ok' | 'failed';
export type ObjectKind = 'chunk' | 'index';

export interface TokenRecord {
  id: number;
  role: Role;
  machine: string | null;
  label: string | null;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface SessionRecord {
  id: string;
  machine: string;
  tokenId: number | null;
  parent: string | null;
  state: SessionState;
  createdAt: number;
  leaseExpiresAt: number;
  imageId: string | null;
}

/** An image as the catalog keeps it: the wire's `ImageInfo`, with its time in milliseconds. */
export interface ImageRecord extends Omit<ImageInfo, 'createdAt' | 'state'> {
  createdAt: number;
  state: ImageState;
}

export interface RestoreCodeRecord {
  id: number;
  machine: string;
  /** Also lets the technician image the machine (a rescue capture), not only restore it. */
  capture: number | boolean;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  uses: number;
  lastUsedAt: number | null;
}

/** One audit event (a restore code created, used, refused, rate-limited or revoked), as recorded. */
export interface AuditEvent {
  id: number;
  time: number;
  kind: string;
  machine: string | null;
  remote: string | null;
  detail: string | null;
}

export interface MachineRecord {
  name: string;
  createdAt: number;
  lastSeenAt: number | null;
  imageCount: number;
  latestImage: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS machines (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER
);
CREATE TABLE IF NOT EXISTS tokens (
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'machine', 'auditor', 'restore')),
  machine_id INTEGER REFERENCES machines(id),
  label TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER,
  last_used_at INTEGER,
  restore_code_id INTEGER
);
CREATE TABLE IF NOT EXISTS restore_codes (
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  machine_id INTEGER NOT NULL REFERENCES machines(id),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER,
  created_by INTEGER,
  uses INTEGER NOT NULL DEFAULT 0,
  last_used_at INTEGER,
  capture INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit_events (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  machine TEXT,
  remote TEXT,
  detail TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  machine_id INTEGER NOT NULL REFERENCES machines(id),
  token_id INTEGER,
  parent TEXT,
  state TEXT NOT NULL CHECK (state IN ('open', 'committed', 'aborted')),
  created_at INTEGER NOT NULL,
  lease_expires_at INTEGER NOT NULL,
  image_id TEXT
);
CREATE TABLE IF NOT EXISTS session_objects (
  session_id TEXT NOT NULL,
  digest BLOB NOT NULL,
  PRIMARY KEY (session_id, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
  digest BLOB PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('chunk', 'index')),
  stored_size INTEGER NOT NULL,
  raw_size INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_touched INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS machine_objects (
  machine_id INTEGER NOT NULL,
  digest BLOB NOT NULL,
  PRIMARY KEY (machine_id, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY,
  machine_id INTEGER NOT NULL REFERENCES machines(id),
  timestamp TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  manifest_digest TEXT NOT NULL,
  parent TEXT,
  disk_keys TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  used_bytes INTEGER NOT NULL,
  uploaded_bytes INTEGER NOT NULL,
  stored_bytes INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'failed')),
  state_reason TEXT,
  UNIQUE (machine_id, timestamp)
);
CREATE INDEX IF NOT EXISTS images_by_machine ON images (machine_id, timestamp);
CREATE TABLE IF NOT EXISTS image_damage (
  image_id TEXT NOT NULL,
  digest BLOB NOT NULL,
  PRIMARY KEY (image_id, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_damage_by_digest ON image_damage (digest);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A new secret: a recognisable prefix and 256 random bits, URL-safe. */
export function newTokenSecret(): string {
  return `b365_${randomBytes(32).toString('base64url')}`;
}

/** Create the database file readable by its owner only, whatever the umask: tokens and sessions live there. */
function createPrivately(file: string): void {
  fs.closeSync(fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600));
}

const digestBlob = (digest: string): Buffer => Buffer.from(digest, 'hex');

interface ImageRow {
  id: string;
  machine: string;
  timestamp: string;
  created_at: number;
  manifest_digest: string;
  parent: string | null;
  disk_keys: string;
  size_bytes: number;
  used_bytes: number;
  uploaded_bytes: number;
  stored_bytes: number;
  state: ImageState;
  state_reason: string | null;
}

function imageFromRow(row: ImageRow): ImageRecord {
  return {
    id: row.id,
    machine: row.machine,
    timestamp: row.timestamp,
    createdAt: row.created_at,
    manifestDigest: row.manifest_digest,
    parent: row.parent,
    diskKeys: JSON.parse(row.disk_keys) as string[],
    sizeBytes: row.size_bytes,
    usedBytes: row.used_bytes,
    uploadedBytes: row.uploaded_bytes,
    storedBytes: row.stored_bytes,
    state: row.state,
    stateReason: row.state_reason,
  };
}

const IMAGE_COLUMNS = `i.id, m.name AS machine, i.timestamp, i.created_at, i.manifest_digest, i.parent, i.disk_keys,
  i.size_bytes, i.used_bytes, i.uploaded_bytes, i.stored_bytes, i.state, i.state_reason`;

export class Catalog {
  readonly db: Database.Database;

  constructor(
    file: string,
    private readonly clock: Clock,
  ) {
    createPrivately(file);
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // SQLite gives -wal and -shm the database file's mode; older ones may predate that.
    for (const companion of [file, `${file}-wal`, `${file}-shm`])
      if (fs.existsSync(companion)) fs.chmodSync(companion, 0o600);
    // WAL with NORMAL: a power cut may lose the last transactions but never corrupts the
    // database; what the catalog caches is rebuilt from the store by reindex. What a client
    // is told is done (an image committed) is written with `durably`.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.migrate();
  }

  close(): void {
    this.db.close();
  }

  /** Columns added after a table first shipped. */
  private migrate(): void {
    const columns = (this.db.prepare('PRAGMA table_info(restore_codes)').all() as { name: string }[]).map(
      (column) => column.name,
    );
    if (!columns.includes('capture'))
      this.db.exec('ALTER TABLE restore_codes ADD COLUMN capture INTEGER NOT NULL DEFAULT 0');
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A prepared statement, compiled once. */
  sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  now(): number {
    return this.clock.now();
  }

  // --- machines -------------------------------------------------------------

  ensureMachine(name: string): number {
    const existing = this.sql('SELECT id FROM machines WHERE name = ?').get(name) as { id: number } | undefined;
    if (existing) return existing.id;
    return Number(
      this.sql('INSERT INTO machines (name, created_at) VALUES (?, ?)').run(name, this.now()).lastInsertRowid,
    );
  }

  machineId(name: string): number | null {
    const row = this.sql('SELECT id FROM machines WHERE name = ?').get(name) as { id: number } | undefined;
    return row?.id ?? null;
  }

  machineSeen(name: string): void {
    this.sql('UPDATE machines SET last_seen_at = ? WHERE name = ?').run(this.now(), name);
  }

  listMachines(): MachineRecord[] {
    const rows = this.db
      .prepare(
        `SELECT m.name, m.created_at, m.last_seen_at,
           (SELECT COUNT(*) FROM images i WHERE i.machine_id = m.id) AS image_count,
           (SELECT i.id FROM images i WHERE i.machine_id = m.id ORDER BY i.timestamp DESC LIMIT 1) AS latest
         FROM machines m ORDER BY m.name`,
      )
      .all() as {
      name: string;
      created_at: number;
      last_seen_at: number | null;
      image_count: number;
      latest: string | null;
    }[];
    return rows.map((row) => ({
      name: row.name,
      createdAt: row.created_at,
      lastSeenAt: row.last_seen_at,
      imageCount: row.image_count,
      latestImage: row.latest,
    }));
  }

  // --- tokens ---------------------------------------------------------------

  createToken(options: {
    role: Role;
    machine?: string | null;
    label?: string | null;
    expiresAt?: number | null;
    secret?: string;
    restoreCodeId?: number;
  }): { secret: string; record: TokenRecord } {
    if ((options.role === 'machine' || options.role === 'restore') && !options.machine) {
      throw new UsageError(`a ${options.role} token needs a machine`);
    }
    if ((options.role === 'admin' || options.role === 'auditor') && options.machine) {
      throw new UsageError(`an ${options.role} token is not tied to a machine`);
    }
    const secret = options.secret ?? newTokenSecret();
    // One transaction: a token that cannot be written leaves no machine behind either.
    const id = this.db.transaction(() => {
      const machineId = options.machine ? this.ensureMachine(options.machine) : null;
      return Number(
        this.db
          .prepare(
            'INSERT INTO tokens (hash, role, machine_id, label, created_at, expires_at, restore_code_id) VALUES (?, ?, ?, ?, ?, ?, ?)',
          )
          .run(
            hashToken(secret),
            options.role,
            machineId,
            options.label ?? null,
            this.now(),
            options.expiresAt ?? null,
            options.restoreCodeId ?? null,
          ).lastInsertRowid,
      );
    })();
    return { secret, record: this.tokenById(id)! };
  }

  private tokenQuery(where: string): string {
    return `SELECT t.id, t.role, m.name AS machine, t.label, t.created_at AS createdAt, t.expires_at AS expiresAt,
      t.revoked_at AS revokedAt, t.last_used_at AS lastUsedAt FROM tokens t LEFT JOIN machines m ON m.id = t.machine_id WHERE ${where}`;
  }

  tokenById(id: number): TokenRecord | null {
    return (this.sql(this.tokenQuery('t.id = ?')).get(id) as TokenRecord | undefined) ?? null;
  }

  tokenBySecret(secret: string): TokenRecord | null {
    return (this.sql(this.tokenQuery('t.hash = ?')).get(hashToken(secret)) as TokenRecord | undefined) ?? null;
  }

  private readonly tokenUseWritten = new Map<number, number>();

  /** Remember when a token was last used, at most once a minute per token. */
  tokenUsed(id: number): void {
    const now = this.now();
    if (now - (this.tokenUseWritten.get(id) ?? 0) < 60_000) return;
    this.tokenUseWritten.set(id, now);
    try {
      this.sql('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now, id);
    } catch (error) {
      // A note for the admin, not worth refusing a read of a full repository for.
      if (!isStorageFull(error)) throw error;
    }
  }

  listTokens(): TokenRecord[] {
    return this.sql(this.tokenQuery('1 = 1 ORDER BY t.id')).all() as TokenRecord[];
  }

  revokeToken(id: number): void {
    const result = this.sql('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(this.now(), id);
    if (result.changes === 0 && !this.tokenById(id)) throw new NotFoundError(`token ${id} does not exist`);
  }

  // --- restore codes and the audit trail -----------------------------------

  createRestoreCode(options: {
    code: string;
    machine: string;
    expiresAt: number;
    createdBy: number | null;
    capture?: boolean;
  }): RestoreCodeRecord {
    const id = this.db.transaction(() => {
      const machineId = this.ensureMachine(options.machine);
      return Number(
        this.db
          .prepare(
            'INSERT INTO restore_codes (hash, machine_id, created_at, expires_at, created_by, capture) VALUES (?, ?, ?, ?, ?, ?)',
          )
          .run(
            hashToken(options.code),
            machineId,
            this.now(),
            options.expiresAt,
            options.createdBy,
            options.capture ? 1 : 0,
          ).lastInsertRowid,
      );
    })();
    return this.restoreCodeById(id)!;
  }

  private restoreCodeQuery =
    `SELECT r.id, m.name AS machine, r.created_at AS createdAt, r.expires_at AS expiresAt, r.revoked_at AS revokedAt,
    r.uses, r.last_used_at AS lastUsedAt, r.capture = 1 AS capture FROM restore_codes r JOIN machines m ON m.id = r.machine_id`;

  restoreCodeById(id: number): RestoreCodeRecord | null {
    return (this.sql(`${this.restoreCodeQuery} WHERE r.id = ?`).get(id) as RestoreCodeRecord | undefined) ?? null;
  }

  restoreCodeByCode(code: string): RestoreCodeRecord | null {
    return (
      (this.sql(`${this.restoreCodeQuery} WHERE r.hash = ?`).get(hashToken(code)) as RestoreCodeRecord | undefined) ??
      null
    );
  }

  listRestoreCodes(): RestoreCodeRecord[] {
    return this.sql(`${this.restoreCodeQuery} ORDER BY r.id`).all() as RestoreCodeRecord[];
  }

  restoreCodeUsed(id: number): void {
    this.sql('UPDATE restore_codes SET uses = uses + 1, last_used_at = ? WHERE id = ?').run(this.now(), id);
  }

  /** Revoke a code and every token it was exchanged for. */
  revokeRestoreCode(id: number): void {
    if (!this.restoreCodeById(id)) throw new NotFoundError(`restore code ${id} does not exist`);
    const now = this.now();
    this.db.transaction(() => {
      this.sql('UPDATE restore_codes SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id);
      this.sql('UPDATE tokens SET revoked_at = ? WHERE restore_code_id = ? AND revoked_at IS NULL').run(now, id);
    })();
  }

  audit(kind: string, details: { machine?: string | null; remote?: string | null; detail?: string | null }): void {
    this.sql('INSERT INTO audit_events (time, kind, machine, remote, detail) VALUES (?, ?, ?, ?, ?)').run(
      this.now(),
      kind,
      details.machine ?? null,
      details.remote ?? null,
      details.detail ?? null,
    );
  }

  auditEvents(kind?: string): AuditEvent[] {
    const rows = kind
      ? this.sql('SELECT * FROM audit_events WHERE kind = ? ORDER BY id').all(kind)
      : this.sql('SELECT * FROM audit_events ORDER BY id').all();
    return rows as AuditEvent[];
  }

  // --- sessions -------------------------------------------------------------

  private sessionQuery =
    `SELECT s.id, m.name AS machine, s.token_id AS tokenId, s.parent, s.state, s.created_at AS createdAt,
    s.lease_expires_at AS leaseExpiresAt, s.image_id AS imageId FROM sessions s JOIN machines m ON m.id = s.machine_id`;

  createSession(options: {
    id: string;
    machine: string;
    tokenId: number | null;
    parent: string | null;
    leaseMs: number;
  }): SessionRecord {
    const machineId = this.ensureMachine(options.machine);
    const now = this.now();
    this.db
      .prepare(
        'INSERT INTO sessions (id, machine_id, token_id, parent, state, created_at, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(options.id, machineId, options.tokenId, options.parent, 'open', now, now + options.leaseMs);
    return this.session(options.id)!;
  }

  session(id: string): SessionRecord | null {
    return (this.sql(`${this.sessionQuery} WHERE s.id = ?`).get(id) as SessionRecord | undefined) ?? null;
  }

  openSessions(): SessionRecord[] {
    return this.sql(`${this.sessionQuery} WHERE s.state = 'open'`).all() as SessionRecord[];
  }

  private readonly leaseWritten = new Map<string, number>();

  /** Extend a session's lease; written at most every tenth of the lease. */
  renewLease(id: string, leaseMs: number): number {
    const now = this.now();
    const until = now + leaseMs;
    if (now - (this.leaseWritten.get(id) ?? 0) < leaseMs / 10) return until;
    this.leaseWritten.set(id, now);
    this.sql("UPDATE sessions SET lease_expires_at = ? WHERE id = ? AND state = 'open'").run(until, id);
    return until;
  }

  abortSession(id: string): void {
    this.db.transaction(() => {
      this.sql("UPDATE sessions SET state = 'aborted' WHERE id = ? AND state = 'open'").run(id);
      this.sql('DELETE FROM session_objects WHERE session_id = ?').run(id);
    })();
  }

  addSessionObjects(sessionId: string, digests: string[]): void {
    const insert = this.sql('INSERT OR IGNORE INTO session_objects (session_id, digest) VALUES (?, ?)');
    this.db.transaction(() => {
      for (const digest of digests) insert.run(sessionId, digestBlob(digest));
    })();
  }

  // --- objects (chunks and indexes) -----------------------------------------

  /** Record a stored object (or touch it) and, in the same transaction, pin it to a session. */
  recordObject(digest: string, kind: ObjectKind, storedSize: number, rawSize: number, sessionId?: string): void {
    const now = this.now();
    const blob = digestBlob(digest);
    this.db.transaction(() => {
      this.sql(
        `INSERT INTO objects (digest, kind, stored_size, raw_size, first_seen, last_touched) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (digest) DO UPDATE SET last_touched = excluded.last_touched`,
      ).run(blob, kind, storedSize, rawSize, now, now);
      if (sessionId)
        this.sql('INSERT OR IGNORE INTO session_objects (session_id, digest) VALUES (?, ?)').run(sessionId, blob);
    })();
  }

  objectInfo(
    digest: string,
  ): { kind: ObjectKind; storedSize: number; rawSize: number; firstSeen: number; lastTouched: number } | null {
    const row = this.sql(
      'SELECT kind, stored_size AS storedSize, raw_size AS rawSize, first_seen AS firstSeen, last_touched AS lastTouched FROM objects WHERE digest = ?',
    ).get(digestBlob(digest)) as
      | { kind: ObjectKind; storedSize: number; rawSize: number; firstSeen: number; lastTouched: number }
      | undefined;
    return row ?? null;
  }

  forgetObject(digest: string): void {
    const blob = digestBlob(digest);
    this.sql('DELETE FROM objects WHERE digest = ?').run(blob);
  }

  /**
   * Of `digests`, those whose catalog row was first written before `since` (or has none):
   * the ones not stored while a session that began at `since` was open.
   */
  recordedBefore(digests: string[], since: number): string[] {
    const firstSeen = this.sql('SELECT first_seen AS firstSeen FROM objects WHERE digest = ?');
    return digests.filter((digest) => {
      const row = firstSeen.get(digestBlob(digest)) as { firstSeen: number } | undefined;
      return !row || row.firstSeen < since;
    });
  }

  /**
   * Of `digests`, those this caller cannot count as present: absent from the store or,
   * for a machine-scoped caller, not among the objects its own images or this session
   * already reference. Present ones are pinned to the session and touched.
   */
  missingObjects(digests: string[], scope: { machine: string | null; sessionId: string | null }): string[] {
    const has = this.sql('SELECT 1 FROM objects WHERE digest = ?');
    const inSession = this.sql('SELECT 1 FROM session_objects WHERE session_id = ? AND digest = ?');
    const inMachine = this.sql('SELECT 1 FROM machine_objects WHERE machine_id = ? AND digest = ?');
    const touch = this.sql('UPDATE objects SET last_touched = ? WHERE digest = ?');
    const pin = this.sql('INSERT OR IGNORE INTO session_objects (session_id, digest) VALUES (?, ?)');
    const machineId = scope.machine ? this.machineId(scope.machine) : null;
    const now = this.now();
    const missing: string[] = [];
    this.db.transaction(() => {
      for (const digest of digests) {
        const blob = digestBlob(digest);
        let visible = has.get(blob) !== undefined;
        if (visible && scope.machine) {
          visible =
            (scope.sessionId !== null && inSession.get(scope.sessionId, blob) !== undefined) ||
            (machineId !== null && inMachine.get(machineId, blob) !== undefined);
        }
        if (!visible) {
          missing.push(digest);
          continue;
        }
        touch.run(now, blob);
        if (scope.sessionId) pin.run(scope.sessionId, blob);
      }
    })();
    return missing;
  }

  /** May this machine read the object (its images or its open sessions reference it)? */
  machineMayRead(machine: string, digest: string): boolean {
    const machineId = this.machineId(machine);
    if (machineId === null) return false;
    const blob = digestBlob(digest);
    if (this.sql('SELECT 1 FROM machine_objects WHERE machine_id = ? AND digest = ?').get(machineId, blob)) return true;
    return (
      this.sql(
        "SELECT 1 FROM session_objects so JOIN sessions s ON s.id = so.session_id WHERE s.machine_id = ? AND s.state = 'open' AND so.digest = ?",
      ).get(machineId, blob) !== undefined
    );
  }

  // --- images ---------------------------------------------------------------

  imageIdTaken(machine: string, timestamp: string): boolean {
    return (
      this.sql(
        'SELECT 1 FROM images i JOIN machines m ON m.id = i.machine_id WHERE m.name = ? AND i.timestamp = ?',
      ).get(machine, timestamp) !== undefined
    );
  }

  /**
   * Record a committed image and make every object it references visible to its machine;
   * with a session, only while that session is still open.
   */
  insertImage(
    image: Omit<ImageRecord, 'state' | 'stateReason'>,
    referenced: Iterable<string>,
    sessionId: string | null,
  ): void {
    const machineId = this.ensureMachine(image.machine);
    const grant = this.sql('INSERT OR IGNORE INTO machine_objects (machine_id, digest) VALUES (?, ?)');
    this.durably(() => {
      this.sql(
        `INSERT INTO images (id, machine_id, timestamp, created_at, manifest_digest, parent, disk_keys, size_bytes, used_bytes, uploaded_bytes, stored_bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        image.id,
        machineId,
        image.timestamp,
        image.createdAt,
        image.manifestDigest,
        image.parent,
        JSON.stringify(image.diskKeys),
        image.sizeBytes,
        image.usedBytes,
        image.uploadedBytes,
        image.storedBytes,
      );
      for (const digest of referenced) grant.run(machineId, digestBlob(digest));
      if (sessionId) {
        const { changes } = this.sql(
          "UPDATE sessions SET state = 'committed', image_id = ? WHERE id = ? AND state = 'open'",
        ).run(image.id, sessionId);
        // Aborted while it committed (its lease ran out): its pins are gone, and garbage
        // collection may have removed what it found present, so the image is not recorded.
        if (changes === 0)
          throw new ConflictError(`upload session ${sessionId} ended while it committed; nothing was committed`);
        this.sql('DELETE FROM session_objects WHERE session_id = ?').run(sessionId);
      }
    });
  }

  /**
   * One transaction that is on disk when this returns: with synchronous FULL, SQLite syncs
   * the WAL at the commit (and with it every earlier transaction). A commit answered to a
   * client and then lost to a power cut was measured in test/e2e/power-cut.test.ts.
   */
  private durably(work: () => void): void {
    // Inside an outer transaction the outer one's commit is what reaches the disk.
    if (this.db.inTransaction) {
      this.db.transaction(work)();
      return;
    }
    this.db.pragma('synchronous = FULL');
    try {
      this.db.transaction(work)();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  image(id: string): ImageRecord | null {
    const row = this.sql(
      `SELECT ${IMAGE_COLUMNS} FROM images i JOIN machines m ON m.id = i.machine_id WHERE i.id = ?`,
    ).get(id) as ImageRow | undefined;
    return row ? imageFromRow(row) : null;
  }

  listImages(machine?: string): ImageRecord[] {
    const rows = machine
      ? this.sql(
          `SELECT ${IMAGE_COLUMNS} FROM images i JOIN machines m ON m.id = i.machine_id WHERE m.name = ? ORDER BY i.timestamp`,
        ).all(machine)
      : this.sql(
          `SELECT ${IMAGE_COLUMNS} FROM images i JOIN machines m ON m.id = i.machine_id ORDER BY m.name, i.timestamp`,
        ).all();
    return (rows as ImageRow[]).map(imageFromRow);
  }

  /** Resolve `latest` or a (prefix of a) timestamp among a machine's images. */
  resolveImage(machine: string, selector: string): ImageRecord {
    const images = this.listImages(machine);
    if (images.length === 0) throw new NotFoundError(`machine ${machine} has no images`);
    if (selector === 'latest') return images[images.length - 1]!;
    const matches = images.filter((image) => image.timestamp.startsWith(selector));
    if (matches.length === 0) throw new NotFoundError(`machine ${machine} has no image ${selector}`);
    if (matches.length > 1 && !matches.some((image) => image.timestamp === selector)) {
      throw new UsageError(`${machine}@${selector} matches ${matches.length} images; give more of the timestamp`);
    }
    return matches.find((image) => image.timestamp === selector) ?? matches[0]!;
  }

  setImageState(id: string, state: ImageState, reason: string | null): void {
    this.sql('UPDATE images SET state = ?, state_reason = ? WHERE id = ?').run(state, reason, id);
  }

  deleteImage(id: string): void {
    this.db.transaction(() => {
      this.sql('DELETE FROM images WHERE id = ?').run(id);
      this.sql('DELETE FROM image_damage WHERE image_id = ?').run(id);
    })();
  }

  // --- damage: lost or corrupt objects that images reference -----------------

  /** Replace what an image is known to lack (objects verification found lost or corrupt). */
  setImageDamage(id: string, digests: Iterable<string>): void {
    const insert = this.sql('INSERT OR IGNORE INTO image_damage (image_id, digest) VALUES (?, ?)');
    this.db.transaction(() => {
      this.sql('DELETE FROM image_damage WHERE image_id = ?').run(id);
      for (const digest of digests) insert.run(id, digestBlob(digest));
    })();
  }

  imageDamage(id: string): string[] {
    return (this.sql('SELECT digest FROM image_damage WHERE image_id = ?').all(id) as { digest: Buffer }[]).map((row) =>
      row.digest.toString('hex'),
    );
  }

  /** An object is stored again: the images that lacked only it (and others already back) are whole. */
  repairDamage(digest: string): string[] {
    const blob = digestBlob(digest);
    return this.db.transaction(() => {
      const users = (
        this.sql('SELECT image_id AS id FROM image_damage WHERE digest = ?').all(blob) as { id: string }[]
      ).map((row) => row.id);
      if (users.length === 0) return [];
      this.sql('DELETE FROM image_damage WHERE digest = ?').run(blob);
      const stillDamaged = this.sql('SELECT 1 FROM image_damage WHERE image_id = ? LIMIT 1');
      return users.filter((id) => stillDamaged.get(id) === undefined);
    })();
  }

  // --- reindex --------------------------------------------------------------

  /** Drop everything that the store can rebuild (images, objects, grants). */
  clearRebuildable(): void {
    this.db.exec('DELETE FROM images; DELETE FROM objects; DELETE FROM machine_objects; DELETE FROM image_damage;');
  }

  getMeta(key: string): string | null {
    const row = this.sql('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.sql('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
      key,
      value,
    );
  }
}
