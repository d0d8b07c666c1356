// The verification report (DESIGN.md decision 9): what one run found, per image and in
// sum, in the JSON shape the server signs and auditors read. Assembled once, from the
// findings, after every stage has run and its outcome is recorded.
import type { VerificationJob, VerifyLevel } from '../../src/format/verification.js';
import type { VerificationFindings } from './verify-findings.js';

export interface VolumeVerification {
  disk: string;
  volume: string;
  contentDigest: string;
  streamDigest: string | null;
  ok: boolean;
}

export interface ImageVerification {
  image: string;
  machine: string;
  manifestDigest: string;
  indexRoots: string[];
  chunksReferenced: number;
  chunksVerified: number;
  chunksMissing: number;
  chunksCorrupt: number;
  bytesRead: number;
  volumes: VolumeVerification[];
  problems: string[];
  result: 'ok' | 'failed';
}

export interface VerificationReport {
  format: 'backup365-verification-report';
  version: 1;
  id: string;
  level: VerifyLevel;
  scope: { all: boolean; images: string[] };
  startedAt: string;
  finishedAt: string;
  previousReport: string | null;
  keyId: string;
  summary: {
    images: number;
    ok: number;
    failed: number;
    chunksReferenced: number;
    chunksVerified: number;
    chunksMissing: number;
    chunksCorrupt: number;
    bytesRead: number;
  };
  images: ImageVerification[];
  missingChunks: string[];
  corruptChunks: string[];
  quarantined: string[];
  /** Images outside the scope that use a chunk found corrupt: marked failed too. */
  alsoFailed: string[];
  /** Indexes found absent or corrupt (forgotten by the catalog, corrupt ones quarantined). */
  damagedIndexes?: string[];
}

/** Who signs, when the run finished, and which report came before it. */
export interface ReportFrame {
  finishedAt: string;
  previousReport: string | null;
  keyId: string;
}

export function assembleReport(
  job: VerificationJob,
  findings: VerificationFindings,
  frame: ReportFrame,
): VerificationReport {
  const list = [...findings.results.values()];
  const sum = (pick: (item: ImageVerification) => number) => list.reduce((total, item) => total + pick(item), 0);
  return {
    format: 'backup365-verification-report',
    version: 1,
    id: job.id,
    level: job.level,
    scope: job.scope,
    startedAt: job.startedAt!,
    finishedAt: frame.finishedAt,
    previousReport: frame.previousReport,
    keyId: frame.keyId,
    summary: {
      images: list.length,
      ok: list.filter((item) => item.result === 'ok').length,
      failed: list.filter((item) => item.result === 'failed').length,
      chunksReferenced: findings.chunkUsers.size,
      chunksVerified: findings.verified.size,
      chunksMissing: findings.missing.size,
      chunksCorrupt: findings.corrupt.size,
      bytesRead: sum((item) => item.bytesRead),
    },
    images: list,
    missingChunks: [...findings.missing],
    corruptChunks: [...findings.corrupt],
    quarantined: findings.quarantined,
    alsoFailed: findings.alsoFailed,
    damagedIndexes: [...findings.damagedIndexes.keys()],
  };
}
