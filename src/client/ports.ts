// The two ports between imaging and a repository. Capture writes through a sink
// (open a session, ask what is missing, put chunks and indexes, commit); restore, file
// access and verification read through a source (image, manifest, index, chunk). The
// HTTP client implements both against a server; the in-process adapter implements them
// on a repository directory; retry, rate limits or encryption wrap either one.
import type { FixedIndex } from '../format/fixed-index.js';
import type { Manifest } from '../format/manifest.js';

export interface SessionInfo {
  id: string;
  machine: string;
  state: 'open' | 'committed' | 'aborted';
  parent: string | null;
  leaseExpiresAt: string;
  image: string | null;
}

export interface ImageInfo {
  id: string;
  machine: string;
  timestamp: string;
  createdAt: string;
  manifestDigest: string;
  parent: string | null;
  diskKeys: string[];
  sizeBytes: number;
  usedBytes: number;
  uploadedBytes: number;
  storedBytes: number;
  state: 'ok' | 'failed';
  stateReason: string | null;
}

/** Where a repository is: a server's URL or a directory, as people should read it. */
export interface RepositoryLocation {
  readonly server: string;
}

/** Reads of a repository. Everything returned is checked: digests, schema, sizes. */
export interface RepositorySource extends RepositoryLocation {
  /** An image by id, `machine@latest`, `machine@TIMESTAMP`... */
  image(reference: string): Promise<ImageInfo>;
  /** The manifest, proven to hash to the digest the catalog recorded. */
  manifest(reference: string): Promise<{ image: ImageInfo; manifest: Manifest; bytes: Buffer }>;
  /** The newest good image holding any of these disks (the base of an incremental). */
  baseImage(machine: string, diskKeys: string[]): Promise<ImageInfo | null>;
  index(digest: string): Promise<FixedIndex>;
  /** A chunk's stored frame (LZ4), not yet checked: the caller decodes and verifies. */
  chunkFrame(digest: string): Promise<Buffer>;
  /** A chunk's bytes, proven to hash to `digest`. */
  chunk(digest: string, maxSize?: number): Promise<Buffer>;
}

/** Writes of one image, inside an upload session that survives a crash of the writer. */
export interface RepositorySink extends RepositoryLocation {
  /** Open a session with a writer-chosen id, or return the one that already exists. */
  openSession(id: string, machine: string, parent: string | null): Promise<SessionInfo>;
  heartbeat(id: string): Promise<SessionInfo>;
  /** Which of these chunk digests the repository does not hold. */
  missing(id: string, digests: string[]): Promise<string[]>;
  putChunk(id: string, digest: string, frame: Buffer | Buffer[], length?: number): Promise<{ created: boolean }>;
  putIndex(id: string, digest: string, frame: Buffer): Promise<{ created: boolean }>;
  /** Make the image visible; refused (MissingObjectsError) while any object is absent. */
  commit(id: string, manifest: Manifest): Promise<{ image: ImageInfo; manifestDigest: string }>;
  abort(id: string): Promise<SessionInfo>;
}

/** Capture reads the previous image (what need not be sent) and writes the new one. */
export type CaptureRepository = RepositorySink & Pick<RepositorySource, 'baseImage' | 'manifest' | 'index' | 'chunk'>;
