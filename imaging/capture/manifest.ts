// The manifest of a captured image: the planned disks with the volumes as read, the
// image's totals and warnings, its parent, and which client took it and when (to the
// second, as the schema wants).
import os from 'node:os';
import { VERSION } from '../../src/core/version.js';
import { type ImageStats, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest } from '../../src/format/manifest.js';
import type { CapturedDiskVolume } from './commit-repair.js';
import { type DiskPlan, manifestDiskOf } from './plan.js';

export interface ManifestInputs {
  machine: string;
  parent: string | null;
  disks: DiskPlan[];
  captured: CapturedDiskVolume[];
  stats: ImageStats;
  warnings: string[];
  /** When the capture started (ISO time, with milliseconds). */
  startedAt: string;
}

function toSecond(isoTime: string): string {
  return isoTime.replace(/\.\d{3}Z$/, 'Z');
}

export function imageManifestOf(inputs: ManifestInputs, durationMs: number): Manifest {
  const { disks, captured } = inputs;
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    machine: inputs.machine,
    parent: inputs.parent,
    client: {
      version: VERSION,
      hostname: os.hostname(),
      startedAt: toSecond(inputs.startedAt),
      finishedAt: toSecond(new Date().toISOString()),
    },
    disks: disks.map((disk) =>
      manifestDiskOf(
        disk,
        captured.filter((entry) => entry.disk === disk).map((entry) => entry.volume),
      ),
    ),
    stats: { ...inputs.stats, durationMs },
    warnings: inputs.warnings,
  };
}
