// Typed calls to the repository API. Everything that comes back is checked: chunks
// and indexes are decompressed and re-hashed, manifests validated against the schema.
import { decodeChunk } from '../format/chunk.js';
import { type FixedIndex, decodeIndex } from '../format/fixed-index.js';
import type { Manifest } from '../format/manifest.js';
import { checkedManifest } from './checked-manifest.js';
import { HttpClient, type HttpClientOptions } from './http.js';
import type { VerificationJob } from '../format/verification.js';
import type { ImageInfo, RepositorySink, RepositorySource, SessionInfo } from './ports.js';

export type { ImageInfo, SessionInfo } from './ports.js';

export interface MachineInfo {
  name: string;
  createdAt: string;
  lastSeenAt: string | null;
  imageCount: number;
  latestImage: string | null;
}

export interface TokenInfo {
  id: number;
  role: string;
  machine: string | null;
  label: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface RestoreCodeInfo {
  id: number;
  machine: string;
  capture: boolean;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  uses: number;
  lastUsedAt: string | null;
}

const enc = encodeURIComponent;

export class RepositoryClient implements RepositorySink, RepositorySource {
  readonly http: HttpClient;

  constructor(options: HttpClientOptions) {
    this.http = new HttpClient(options);
  }

  get server(): string {
    return this.http.server;
  }

  close(): Promise<void> {
    return this.http.close();
  }

  /** `timezone`: the IANA zone the server shows times in (absent from older servers). */
  health(): Promise<{ ok: boolean; version: string; time: string; timezone?: string }> {
    return this.http.call('GET', '/health');
  }

  openSession(id: string, machine: string, parent: string | null): Promise<SessionInfo> {
    return this.http.call('POST', '/sessions', { json: { id, machine, parent } });
  }

  heartbeat(id: string): Promise<SessionInfo> {
    return this.http.call('POST', `/sessions/${enc(id)}/heartbeat`);
  }

  async missing(id: string, digests: string[]): Promise<string[]> {
    const result = await this.http.call<{ missing: string[] }>('POST', `/sessions/${enc(id)}/missing`, {
      json: { digests },
    });
    return result.missing;
  }

  /** Upload a chunk's frame, whole or as parts sent back to back (with their total length). */
  putChunk(id: string, digest: string, frame: Buffer | Buffer[], length?: number): Promise<{ created: boolean }> {
    return this.http.call('PUT', `/sessions/${enc(id)}/chunks/${digest}`, { body: frame, bodyLength: length });
  }

  putIndex(id: string, digest: string, frame: Buffer): Promise<{ created: boolean }> {
    return this.http.call('PUT', `/sessions/${enc(id)}/indexes/${digest}`, { body: frame });
  }

  commit(id: string, manifest: Manifest): Promise<{ image: ImageInfo; manifestDigest: string }> {
    return this.http.call('POST', `/sessions/${enc(id)}/commit`, { json: manifest });
  }

  abort(id: string): Promise<SessionInfo> {
    return this.http.call('DELETE', `/sessions/${enc(id)}`);
  }

  async listImages(machine?: string): Promise<ImageInfo[]> {
    return (await this.http.call<{ images: ImageInfo[] }>('GET', '/images', { query: { machine } })).images;
  }

  image(reference: string): Promise<ImageInfo> {
    return this.http.call('GET', `/images/${enc(reference)}`);
  }

  async deleteImage(reference: string): Promise<ImageInfo> {
    return (await this.http.call<{ deleted: ImageInfo }>('DELETE', `/images/${enc(reference)}`)).deleted;
  }

  async listMachines(): Promise<MachineInfo[]> {
    return (await this.http.call<{ machines: MachineInfo[] }>('GET', '/machines')).machines;
  }

  async baseImage(machine: string, diskKeys: string[]): Promise<ImageInfo | null> {
    return (
      await this.http.call<{ image: ImageInfo | null }>('GET', `/machines/${enc(machine)}/base`, {
        query: { disk: diskKeys },
      })
    ).image;
  }

  /** The manifest of an image, checked against the digest the catalog recorded for it. */
  async manifest(reference: string): Promise<{ image: ImageInfo; manifest: Manifest; bytes: Buffer }> {
    const image = await this.image(reference);
    const bytes = await this.http.bytes(`/images/${enc(image.id)}/manifest`);
    return { image, manifest: checkedManifest(image, bytes), bytes };
  }

  chunkFrame(digest: string): Promise<Buffer> {
    return this.http.bytes(`/chunks/${digest}`);
  }

  /** A chunk's bytes, proven to hash to `digest`. */
  async chunk(digest: string, maxSize?: number): Promise<Buffer> {
    return decodeChunk(await this.chunkFrame(digest), digest, maxSize);
  }

  async index(digest: string): Promise<FixedIndex> {
    return decodeIndex(await this.http.bytes(`/indexes/${digest}`), digest);
  }

  /** Trade a technician's restore code for a token scoped to one machine (no token needed). */
  static async exchangeRestoreCode(
    server: string,
    code: string,
    options: { retryForMs?: number; answerTimeoutMs?: number; signal?: AbortSignal; fingerprint?: string } = {},
  ): Promise<{ token: string; machine: string; role: 'restore' | 'machine'; expiresAt: string }> {
    const http = new HttpClient({
      server,
      token: '',
      retryForMs: options.retryForMs,
      answerTimeoutMs: options.answerTimeoutMs,
      signal: options.signal,
      fingerprint: options.fingerprint,
    });
    try {
      return await http.call('POST', '/restore-codes/exchange', { json: { code }, idempotent: false });
    } finally {
      await http.close();
    }
  }

  async createRestoreCode(
    machine: string,
    ttlSeconds?: number,
    capture = false,
  ): Promise<RestoreCodeInfo & { code: string }> {
    return this.http.call('POST', '/restore-codes', { json: { machine, ttlSeconds, capture }, idempotent: false });
  }

  async listRestoreCodes(): Promise<RestoreCodeInfo[]> {
    return (await this.http.call<{ codes: RestoreCodeInfo[] }>('GET', '/restore-codes')).codes;
  }

  async revokeRestoreCode(id: number): Promise<RestoreCodeInfo> {
    return (await this.http.call<{ revoked: RestoreCodeInfo }>('DELETE', `/restore-codes/${id}`)).revoked;
  }

  startVerification(request: { images?: string[]; all?: boolean; level?: string }): Promise<VerificationJob> {
    return this.http.call('POST', '/verifications', { json: request, idempotent: false });
  }

  verification(id: string): Promise<VerificationJob> {
    return this.http.call('GET', `/verifications/${enc(id)}`);
  }

  verificationReport(id: string): Promise<Buffer> {
    return this.http.bytes(`/verifications/${enc(id)}/report`);
  }

  async keys(): Promise<{ keyId: string; algorithm: string; publicKey: string }[]> {
    return (await this.http.call<{ keys: { keyId: string; algorithm: string; publicKey: string }[] }>('GET', '/keys'))
      .keys;
  }

  async createToken(request: {
    role: string;
    machine?: string;
    label?: string;
    ttlSeconds?: number;
  }): Promise<TokenInfo & { token: string }> {
    return this.http.call('POST', '/tokens', { json: request, idempotent: false });
  }

  async listTokens(): Promise<TokenInfo[]> {
    return (await this.http.call<{ tokens: TokenInfo[] }>('GET', '/tokens')).tokens;
  }

  async revokeToken(id: number): Promise<TokenInfo> {
    return (await this.http.call<{ revoked: TokenInfo }>('DELETE', `/tokens/${id}`)).revoked;
  }
}
