// A repository directory used in this process, without a server: the capture and
// restore ports (src/client/ports.ts) as calls on the server's own Repository, acting as
// its admin. Every check the HTTP path makes is made here by the same code: objects are
// re-hashed on put, commits refuse missing objects, manifests match their recorded
// digest, chunks and indexes are decoded and verified. The directory is locked while open.
import fs from 'node:fs';
import path from 'node:path';
import { checkedManifest } from '../src/client/checked-manifest.js';
import type { ImageInfo, RepositorySink, RepositorySource, SessionInfo } from '../src/client/ports.js';
import { type Clock, systemClock } from '../src/core/clock.js';
import { AuthError, NotFoundError } from '../src/core/errors.js';
import type { FileLock } from '../src/core/file-lock.js';
import { type Logger, silentLogger } from '../src/core/log.js';
import { localTimeZone } from '../src/core/schedule.js';
import { VERSION } from '../src/core/version.js';
import { decodeChunk } from '../src/format/chunk.js';
import { type FixedIndex, decodeIndex } from '../src/format/fixed-index.js';
import { assertMachineName } from '../src/format/image-ref.js';
import type { Manifest } from '../src/format/manifest.js';
import type { Principal } from './auth.js';
import type { Catalog } from './catalog/catalog.js';
import { Repository } from './repository.js';
import { lockRepository } from './repository-lock.js';
import { imageView } from './image-view.js';
import { asRepositoryFull } from './storage-full.js';

export interface LocalRepositoryOptions {
  /** Who opens it, as the lock names the holder to anyone else: "b365 image". */
  command: string;
  /** A capture makes the directory a repository on first use; reads refuse one that is not. */
  create: boolean;
  clock?: Clock;
  log?: Logger;
}

/** The catalog file every repository has (the store alone can rebuild it: `b365 server reindex`). */
const CATALOG_FILE = 'catalog.sqlite';

/** Refuse, before anything is created or locked, a directory no capture or server ever wrote. */
function requireRepository(root: string): void {
  if (!fs.existsSync(root)) throw new NotFoundError(`repository directory ${root} does not exist`);
  if (!fs.existsSync(path.join(root, CATALOG_FILE))) {
    throw new NotFoundError(
      `${root} is not a Backup365 repository (it has no ${CATALOG_FILE}): name the directory a capture or server wrote, or rebuild a copied store's catalog with \`b365 server reindex --repo ${root}\``,
    );
  }
}

/** The repository's own admin (its first token, kept in admin.token), as `b365 server` would know it. */
function adminPrincipal(catalog: Catalog, root: string): Principal {
  const admin = catalog.listTokens().find((token) => token.role === 'admin' && token.revokedAt === null);
  if (!admin) throw new AuthError(`repository ${root} has no admin token`);
  return { tokenId: admin.id, role: 'admin', machine: null };
}

export class LocalRepository implements RepositorySink, RepositorySource {
  private constructor(
    /** The directory, as reports and session state name the repository. */
    readonly server: string,
    private readonly repository: Repository,
    private readonly principal: Principal,
    private readonly lock: FileLock,
  ) {}

  /** Open (or, with `create`, make) the repository in `directory` and lock it until close. */
  static async open(directory: string, options: LocalRepositoryOptions): Promise<LocalRepository> {
    const root = path.resolve(directory);
    if (!options.create) requireRepository(root);
    const lock = lockRepository(root, options.command, { create: options.create });
    try {
      const { repository } = await Repository.open(root, {
        clock: options.clock ?? systemClock,
        log: options.log ?? silentLogger,
      });
      return new LocalRepository(root, repository, adminPrincipal(repository.catalog, root), lock);
    } catch (error) {
      lock.release();
      throw asRepositoryFull(error, `opening ${root}`);
    }
  }

  async close(): Promise<void> {
    this.repository.close();
    this.lock.release();
  }

  /** Run one repository call; a full disk met anywhere is reported as the server reports it. */
  private async call<T>(what: string, operation: () => T | Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw asRepositoryFull(error, what);
    }
  }

  // --- the sink -------------------------------------------------------------

  openSession(id: string, machine: string, parent: string | null): Promise<SessionInfo> {
    return this.call('opening an upload session', () =>
      this.repository.openSession(this.principal, { id, machine: assertMachineName(machine, 'machine'), parent }),
    );
  }

  heartbeat(id: string): Promise<SessionInfo> {
    return this.call('renewing a session', () => this.repository.heartbeat(this.principal, id));
  }

  missing(id: string, digests: string[]): Promise<string[]> {
    return this.call('asking for missing objects', () => this.repository.missing(this.principal, id, digests));
  }

  putChunk(id: string, digest: string, frame: Buffer | Buffer[], length?: number): Promise<{ created: boolean }> {
    const whole = Array.isArray(frame) ? Buffer.concat(frame, length) : frame;
    return this.call(`storing chunk ${digest}`, async () => {
      const { created } = await this.repository.putObject(this.principal, id, 'chunk', digest, whole);
      return { created };
    });
  }

  putIndex(id: string, digest: string, frame: Buffer): Promise<{ created: boolean }> {
    return this.call(`storing index ${digest}`, async () => {
      const { created } = await this.repository.putObject(this.principal, id, 'index', digest, frame);
      return { created };
    });
  }

  commit(id: string, manifest: Manifest): Promise<{ image: ImageInfo; manifestDigest: string }> {
    // The manifest as a server receives it: JSON, so nothing but what JSON carries is committed.
    const body: unknown = JSON.parse(JSON.stringify(manifest));
    return this.call('committing the image', async () => {
      const result = await this.repository.commit(this.principal, id, body);
      return { image: imageView(result.image), manifestDigest: result.manifestDigest };
    });
  }

  abort(id: string): Promise<SessionInfo> {
    return this.call('aborting a session', () => this.repository.abortSession(this.principal, id));
  }

  // --- the source -----------------------------------------------------------

  image(reference: string): Promise<ImageInfo> {
    return this.call('reading the catalog', () => imageView(this.repository.resolveImage(this.principal, reference)));
  }

  manifest(reference: string): Promise<{ image: ImageInfo; manifest: Manifest; bytes: Buffer }> {
    return this.call(`reading the manifest of ${reference}`, async () => {
      const { image: record, bytes } = await this.repository.manifestBytes(this.principal, reference);
      const image = imageView(record);
      return { image, manifest: checkedManifest(image, bytes), bytes };
    });
  }

  baseImage(machine: string, diskKeys: string[]): Promise<ImageInfo | null> {
    return this.call('reading the catalog', () => {
      const base = this.repository.baseImage(this.principal, assertMachineName(machine, 'machine'), diskKeys);
      return base ? imageView(base) : null;
    });
  }

  index(digest: string): Promise<FixedIndex> {
    return this.call(`reading index ${digest}`, async () =>
      decodeIndex(await this.repository.objectFrame(this.principal, 'index', digest), digest),
    );
  }

  chunkFrame(digest: string): Promise<Buffer> {
    return this.call(`reading chunk ${digest}`, () => this.repository.objectFrame(this.principal, 'chunk', digest));
  }

  async chunk(digest: string, maxSize?: number): Promise<Buffer> {
    return decodeChunk(await this.chunkFrame(digest), digest, maxSize);
  }

  // --- what `b365 images` shows and does ------------------------------------

  listImages(machine?: string): Promise<ImageInfo[]> {
    return this.call('reading the catalog', () =>
      this.repository
        .listImages(this.principal, machine === undefined ? undefined : assertMachineName(machine, '--machine'))
        .map(imageView),
    );
  }

  deleteImage(reference: string): Promise<ImageInfo> {
    return this.call(`deleting ${reference}`, async () =>
      imageView(await this.repository.deleteImage(this.principal, reference)),
    );
  }

  /** What a server's /health says, for tables that show times: this machine is the server. */
  async health(): Promise<{ ok: boolean; version: string; time: string; timezone: string }> {
    return {
      ok: true,
      version: VERSION,
      time: new Date(this.repository.clock.now()).toISOString(),
      timezone: localTimeZone(),
    };
  }
}
