// A verification job as the server reports it (GET /verifications/{id}): the shape the
// server keeps and the client reads.

export type VerifyLevel = 'structural' | 'content' | 'restore-stream';
export const VERIFY_LEVELS: VerifyLevel[] = ['structural', 'content', 'restore-stream'];

export interface VerificationJob {
  id: string;
  level: VerifyLevel;
  scope: { all: boolean; images: string[] };
  state: 'queued' | 'running' | 'done' | 'error';
  result: 'ok' | 'failed' | null;
  startedAt: string | null;
  finishedAt: string | null;
  progress: { done: number; total: number; stage: string };
  reportDigest: string | null;
  /** Why the signed report could not be kept in the repository (a full disk): it is served from memory until the server restarts. */
  reportNotStored?: string | null;
  error: string | null;
}
