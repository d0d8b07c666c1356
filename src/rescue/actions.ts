// What the rescue program does once it knows what to do: reach the server with a
// restore code or a token, pick an image, and restore it onto a disk or capture a disk.
// The interactive and the unattended front ends share these steps.
import { setTimeout as sleep } from 'node:timers/promises';
import { captureImage, type CaptureReport } from '../../imaging/capture/image.js';
import { planSources } from '../../imaging/capture/sources.js';
import { restoreImage, type RestoreReport } from '../../imaging/restore/image.js';
import { RepositoryClient, type ImageInfo } from '../client/repository.js';
import { defaultStateDirectory } from '../client/session-state.js';
import type { Manifest } from '../format/manifest.js';
import { ForbiddenError, UnavailableError, UsageError, UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { assertWritable, type DiskCandidate } from './disks.js';

export interface Connection {
  client: RepositoryClient;
  /** The machine a restore code is tied to; null for a token that is not tied to one. */
  machine: string | null;
  via: 'code' | 'token';
  /** What a restore code allows: `restore` reads images only, `machine` (made with --capture) also writes them. */
  role: 'restore' | 'machine' | null;
  expiresAt: string | null;
}

/** Refused before a disk is read: a plain restore code may read its machine's images, never write one. */
export function assertMayCapture(connection: Connection): void {
  if (connection.role !== 'restore') return;
  const machine = connection.machine ?? 'this machine';
  throw new ForbiddenError(
    `this restore code lets the rescue USB restore ${machine}, but it cannot write images; ask for one made with \`b365 restore-code create --machine ${machine} --capture\``,
  );
}

export interface Credentials {
  code?: string | null;
  token?: string | null;
}

/** A failed exchange that a retry may cure: no route yet, server restarting. Not a wrong code. */
function worthRetrying(error: unknown): boolean {
  return (
    error instanceof UnavailableError && (error.details?.status === undefined || Number(error.details.status) >= 500)
  );
}

export interface ConnectOptions {
  log?: Logger;
  retryForMs?: number;
  signal?: AbortSignal;
  /** The server certificate's SHA-256 fingerprint; checked in the TLS handshake, before any request. */
  fingerprint?: string;
}

/** Exchange the restore code (or take the token), retrying while the network settles. */
export async function connect(
  server: string,
  credentials: Credentials,
  options: ConnectOptions = {},
): Promise<Connection> {
  const deadline = Date.now() + (options.retryForMs ?? 60_000);
  const { fingerprint } = options;
  if (credentials.code) {
    for (;;) {
      try {
        const exchanged = await RepositoryClient.exchangeRestoreCode(server, credentials.code, {
          retryForMs: 0,
          signal: options.signal,
          fingerprint,
        });
        const client = new RepositoryClient({
          server,
          token: exchanged.token,
          log: options.log,
          signal: options.signal,
          fingerprint,
        });
        return {
          client,
          machine: exchanged.machine,
          via: 'code',
          role: exchanged.role,
          expiresAt: exchanged.expiresAt,
        };
      } catch (error) {
        if (!worthRetrying(error) || Date.now() >= deadline) throw error;
        await sleep(2000);
      }
    }
  }
  if (!credentials.token) throw new UsageError('a restore code or a token is needed');
  const client = new RepositoryClient({
    server,
    token: credentials.token,
    log: options.log,
    retryForMs: options.retryForMs ?? 60_000,
    signal: options.signal,
    fingerprint,
  });
  // Any authenticated call proves the token before a disk is touched.
  await client.listMachines().catch(async (error: unknown) => {
    // A machine token may not list machines but is still valid for its own images.
    if (error instanceof ForbiddenError) return;
    await client.close();
    throw error;
  });
  return { client, machine: null, via: 'token', role: null, expiresAt: null };
}

/** `latest`, a timestamp or a full id, for the given machine. */
export function imageReference(machine: string, image: string): string {
  return image.includes('@') ? image : `${machine}@${image}`;
}

export interface ChosenImage {
  info: ImageInfo;
  manifest: Manifest;
}

export async function loadImage(client: RepositoryClient, reference: string): Promise<ChosenImage> {
  const { image, manifest } = await client.manifest(reference);
  return { info: image, manifest };
}

export interface ActionProgress {
  stage: string;
  bytesDone: number;
  bytesTotal: number;
}

export async function restoreOnto(options: {
  client: RepositoryClient;
  image: string;
  disk: DiskCandidate;
  signal?: AbortSignal;
  onProgress?(progress: ActionProgress): void;
}): Promise<RestoreReport> {
  assertWritable(options.disk);
  return restoreImage({
    client: options.client,
    reference: options.image,
    target: options.disk.path,
    // The rescue program has its own consent: the typed disk name, or b365.target= itself.
    yes: true,
    signal: options.signal,
    onProgress: (progress) => options.onProgress?.(progress),
  });
}

export async function captureFrom(options: {
  client: RepositoryClient;
  machine: string;
  disk: DiskCandidate;
  log: Logger;
  signal?: AbortSignal;
  onProgress?(progress: ActionProgress): void;
}): Promise<CaptureReport> {
  if (options.disk.mounted.length) {
    throw new UserError(
      `${options.disk.path} has mounted filesystems (${options.disk.mounted.join(', ')}); an offline image needs them unmounted`,
    );
  }
  // The same plan as `b365 image`: partition table and used blocks of each filesystem.
  // Nothing is mounted here, so a mounted filesystem is refused rather than frozen.
  const { disks, beforeVolume } = await planSources([options.disk.path], {
    chunkSize: 'auto',
    raw: false,
    live: 'refuse',
  });
  return captureImage({
    client: options.client,
    machine: options.machine,
    disks,
    beforeVolume,
    stateDirectory: defaultStateDirectory(),
    log: options.log,
    signal: options.signal,
    onProgress: ({ bytesDone, bytesTotal }) => options.onProgress?.({ stage: 'reading', bytesDone, bytesTotal }),
  });
}

/** The stable code of a failure, for scripts: the server's reason when it gave one. */
export function failureCode(error: unknown): string {
  if (error instanceof UserError) {
    const serverCode = error.details?.code;
    return typeof serverCode === 'string' && serverCode ? serverCode : error.code;
  }
  return 'internal';
}

/** One line a script can match: `B365-RESULT status=ok key=value ... message="..."`. */
export function resultLine(fields: Record<string, string | number | boolean | null | undefined>): string {
  const parts = Object.entries(fields)
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([key, value]) => {
      const text = String(value).replace(/\s+/g, ' ').trim();
      return /^[\w@.:/+,-]+$/.test(text) ? `${key}=${text}` : `${key}=${JSON.stringify(text)}`;
    });
  return `B365-RESULT ${parts.join(' ')}`;
}
