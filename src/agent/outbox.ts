// Run reports waiting for the server. Every change of a run is written here first
// (atomically and durably), then sent; a final report stays until the server has taken it, so a
// run that ends while the server is away is reported when it comes back.
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import type { RunReport } from '../format/run-report.js';

export class ReportOutbox {
  readonly directory: string;

  constructor(stateDirectory: string) {
    this.directory = path.join(stateDirectory, 'reports');
  }

  private fileOf(id: string): string {
    return path.join(this.directory, `${id}.json`);
  }

  async save(report: RunReport): Promise<void> {
    await writeFileAtomic(this.fileOf(report.id), `${JSON.stringify(report, null, 2)}\n`, {
      mode: 0o600,
      directoryMode: 0o700,
    });
  }

  async remove(id: string): Promise<void> {
    await fs.rm(this.fileOf(id), { force: true });
  }

  /** Every waiting report, oldest start first; unreadable files are skipped. */
  async pending(): Promise<RunReport[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.directory);
    } catch {
      return [];
    }
    const reports: RunReport[] = [];
    for (const name of names.filter((entry) => entry.endsWith('.json'))) {
      try {
        reports.push(JSON.parse(await fs.readFile(path.join(this.directory, name), 'utf8')) as RunReport);
      } catch {
        // A half-written temporary never has the .json name; anything else is not ours.
      }
    }
    return reports.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }
}
