// The repository's upload session of one capture, kept across crashes: resumed by the
// state file of an interrupted run or opened anew, kept alive by a heartbeat, committed
// (sending again what the repository reports missing), and forgotten once committed. A
// failure keeps both the session and the state file, so the next run resumes the upload.
import { randomUUID } from 'node:crypto';
import type { RepositorySink } from '../../src/client/ports.js';
import { SessionStateFile } from '../../src/client/session-state.js';
import { MissingObjectsError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/log.js';
import { encodeFrame } from '../../src/format/lz4-frame.js';
import type { Manifest } from '../../src/format/manifest.js';

export interface UploadSessionOptions {
  stateDirectory: string;
  machine: string;
  /** The disks read, which (with the repository and machine) name the state file. */
  sources: string[];
  /** The base image the new one is an incremental of. */
  parent: string | null;
  log: Logger;
  /** When the capture started, recorded in the state file. */
  createdAt?: string;
  heartbeatMs?: number;
}

export interface CommittedImage {
  image: { id: string };
  manifestDigest: string;
}

/**
 * Sends what the repository reports missing at commit, deleting from `missing` what it
 * sent; returns how many objects it sent.
 */
export type MissingObjectsRepair = (missing: Set<string>) => Promise<number>;

/** Refused commits repaired before giving up: each round sends what the last one lacked. */
const COMMIT_ATTEMPTS = 6;

export class UploadSession {
  private readonly heartbeat: NodeJS.Timeout;

  private constructor(
    private readonly repository: RepositorySink,
    private readonly stateFile: SessionStateFile,
    readonly id: string,
    /** True when this continues the session of an interrupted run. */
    readonly resumed: boolean,
    private readonly log: Logger,
    heartbeatMs: number,
  ) {
    this.heartbeat = setInterval(() => {
      repository.heartbeat(id).catch((error: Error) => log.warn({ error: error.message }, 'heartbeat failed'));
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  /** Resume the session the state file names while the repository still has it open, or open a new one. */
  static async open(repository: RepositorySink, options: UploadSessionOptions): Promise<UploadSession> {
    const { machine, sources, parent } = options;
    const stateFile = new SessionStateFile(options.stateDirectory, repository.server, machine, sources);
    const saved = await stateFile.load();
    let id = saved?.sessionId ?? randomUUID();
    let session = await repository.openSession(id, machine, parent);
    const resumed = saved !== null && session.state === 'open';
    if (session.state !== 'open') {
      id = randomUUID();
      session = await repository.openSession(id, machine, parent);
    }
    const createdAt = options.createdAt ?? new Date().toISOString();
    await stateFile.save({ sessionId: id, server: repository.server, machine, sources, createdAt });
    if (resumed) options.log.info({ session: id }, 'resuming an interrupted upload session');
    return new UploadSession(repository, stateFile, id, resumed, options.log, options.heartbeatMs ?? 60_000);
  }

  /** The file that remembers this session until it is committed. */
  get stateFilePath(): string {
    return this.stateFile.file;
  }

  /** Send the indexes (digest → encoded index) the repository does not hold yet. */
  async putIndexes(indexes: Map<string, Buffer>): Promise<void> {
    if (indexes.size === 0) return;
    const missing = new Set(await this.repository.missing(this.id, [...indexes.keys()]));
    for (const [digest, bytes] of indexes)
      if (missing.has(digest)) await this.repository.putIndex(this.id, digest, encodeFrame(bytes));
  }

  /**
   * Commit; a refusal for missing objects (the base image was pruned since, a file was
   * lost, or a rare digest-key collision) is repaired and the commit tried again.
   */
  async commit(manifest: Manifest, repair: MissingObjectsRepair): Promise<CommittedImage> {
    for (let attempt = 1; ; attempt++) {
      try {
        const committed = await this.repository.commit(this.id, manifest);
        this.close();
        await this.stateFile.clear();
        return committed;
      } catch (error) {
        if (!(error instanceof MissingObjectsError) || attempt >= COMMIT_ATTEMPTS) throw error;
        const details = error.details as { kind?: string; missing?: string[] };
        const missing = new Set(details.missing ?? []);
        this.log.warn(
          { missing: missing.size, kind: details.kind },
          'server lacks objects the base image held; sending them',
        );
        if ((await repair(missing)) === 0) throw error;
      }
    }
  }

  /** Stop the heartbeat; the session itself stays open for the next run. */
  close(): void {
    clearInterval(this.heartbeat);
  }
}
