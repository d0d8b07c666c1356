// The state one restore carries from stage to stage: the plan, where the bytes come from,
// the open target, and the report the stages fill in as they go.
import type { FileHandle } from 'node:fs/promises';
import type { RepositorySource } from '../../src/client/ports.js';
import type { FixedIndex } from '../../src/format/fixed-index.js';
import type { PartitionTable } from '../../src/format/manifest.js';
import type { RestoreCheck } from './checks.js';
import type { RestorePlan } from './plan.js';

export interface RestoreReport {
  image: string;
  disk: string;
  target: string;
  targetSize: number;
  bytesWritten: number;
  bytesFetched: number;
  chunksFetched: number;
  durationMs: number;
  partitionTable: PartitionTable;
  grown: string | null;
  checks: RestoreCheck[];
  verified: boolean;
}

export interface RestoreProgress {
  bytesDone: number;
  bytesTotal: number;
  stage: string;
}

export interface RestoreRun {
  plan: RestorePlan;
  source: RepositorySource;
  /** The index of every volume of the disk, by volume id. */
  indexes: Map<string, FixedIndex>;
  handle: FileHandle;
  report: RestoreReport;
  /** Digests of what each gap received, chunk by chunk, with the table areas zeroed. */
  gapWritten: Map<string, Map<number, string>>;
  parallel?: number;
  signal?: AbortSignal;
  onProgress?(progress: RestoreProgress): void;
  onStage?(stage: string): void;
}

export function emptyReport(plan: RestorePlan, target: string): RestoreReport {
  return {
    image: plan.imageId,
    disk: plan.disk.id,
    target,
    targetSize: plan.target.size,
    bytesWritten: 0,
    bytesFetched: 0,
    chunksFetched: 0,
    durationMs: 0,
    partitionTable: plan.table?.table ?? plan.disk.partitionTable,
    grown: null,
    checks: [],
    verified: false,
  };
}

/** The index of a volume of the planned disk (every one is loaded before the first write). */
export function indexOf(run: Pick<RestoreRun, 'indexes'>, volumeId: string): FixedIndex {
  return run.indexes.get(volumeId)!;
}
