// A garbage collection job as the server reports it (GET /gc/{id}): the shape the server
// keeps and the client reads.

export interface GcReport {
  manifests: number;
  referenced: number;
  scanned: number;
  keptPinned: number;
  keptRecent: number;
  removed: number;
  bytesReclaimed: number;
  sessionsExpired: number;
}

export interface GcJob {
  id: string;
  dryRun: boolean;
  graceSeconds: number;
  state: 'running' | 'done' | 'error';
  startedAt: string;
  finishedAt: string | null;
  stage: string;
  report: GcReport;
  error: string | null;
}
