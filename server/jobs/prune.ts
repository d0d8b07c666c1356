// Retention (DESIGN.md decision 8): which images of a machine its policy keeps, with
// the semantics of Proxmox Backup Server's prune. Walking from newest to oldest, each
// rule (last, hourly, daily, weekly, monthly, yearly, in that order) keeps the newest
// image of each period not yet represented by a kept image, until it has kept its
// count; periods are read in the policy's time zone, weeks are ISO weeks. An image no
// rule keeps is removed; with no rule at all, everything is kept.
import { randomBytes } from 'node:crypto';
import { timestampOf } from '../../src/format/image-ref.js';
import { type Retention, RETENTION_KEYS } from '../../src/format/policy.js';
import type { Logger } from '../../src/core/log.js';
import { type Principal, requireRole } from '../auth.js';
import type { ImageRecord } from '../catalog/catalog.js';
import type { Policies } from '../policies.js';
import type { Repository } from '../repository.js';

export type KeepReason =
  | 'last'
  | 'hourly'
  | 'daily'
  | 'weekly'
  | 'monthly'
  | 'yearly'
  | 'no-retention'
  | 'verification-failed'
  | 'base-of-upload';

export interface PruneDecision {
  id: string;
  time: number;
  keep: boolean;
  reason: KeepReason | null;
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function localParts(time: number, timezone: string): LocalParts {
  let format = formatters.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      hourCycle: 'h23',
    });
    formatters.set(timezone, format);
  }
  const parts: Record<string, number> = {};
  for (const part of format.formatToParts(new Date(time)))
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour! };
}

/** ISO 8601 week-numbering year and week of a calendar date. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0
  date.setUTCDate(date.getUTCDate() - weekday + 3); // the Thursday of this week decides the year
  const weekYear = date.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(weekYear, 0, 4));
  firstThursday.setUTCDate(firstThursday.getUTCDate() - ((firstThursday.getUTCDay() + 6) % 7) + 3);
  return { year: weekYear, week: 1 + Math.round((date.getTime() - firstThursday.getTime()) / (7 * 86400_000)) };
}

const RULES: { key: keyof Retention; reason: KeepReason; period: (parts: LocalParts, id: string) => string }[] = [
  { key: 'keepLast', reason: 'last', period: (_parts, id) => id },
  { key: 'keepHourly', reason: 'hourly', period: (p) => `${p.year}/${p.month}/${p.day}/${p.hour}` },
  { key: 'keepDaily', reason: 'daily', period: (p) => `${p.year}/${p.month}/${p.day}` },
  {
    key: 'keepWeekly',
    reason: 'weekly',
    period: (p) => {
      const week = isoWeek(p.year, p.month, p.day);
      return `${week.year}/W${week.week}`;
    },
  },
  { key: 'keepMonthly', reason: 'monthly', period: (p) => `${p.year}/${p.month}` },
  { key: 'keepYearly', reason: 'yearly', period: (p) => `${p.year}` },
];

/** Decide, for images of one machine, which the retention keeps. */
export function selectRetained(
  images: { id: string; time: number }[],
  retention: Retention,
  timezone: string,
): PruneDecision[] {
  const newestFirst = [...images].sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : -1));
  const decisions = new Map<string, PruneDecision>(
    newestFirst.map((image) => [image.id, { id: image.id, time: image.time, keep: false, reason: null }]),
  );
  if (RETENTION_KEYS.every((key) => retention[key] === 0)) {
    for (const decision of decisions.values()) Object.assign(decision, { keep: true, reason: 'no-retention' });
    return [...decisions.values()];
  }
  const parts = new Map(newestFirst.map((image) => [image.id, localParts(image.time, timezone)]));
  for (const rule of RULES) {
    const wanted = retention[rule.key];
    if (wanted === 0) continue;
    const periodOf = (id: string) => rule.period(parts.get(id)!, id);
    // A period some earlier rule already kept an image of needs no second one.
    const covered = new Set(
      newestFirst.filter((image) => decisions.get(image.id)!.keep).map((image) => periodOf(image.id)),
    );
    const chosen = new Set<string>();
    for (const image of newestFirst) {
      const decision = decisions.get(image.id)!;
      if (decision.keep) continue;
      const period = periodOf(image.id);
      if (covered.has(period) || chosen.has(period)) continue;
      if (chosen.size >= wanted) break;
      chosen.add(period);
      decision.keep = true;
      decision.reason = rule.reason;
    }
  }
  return [...decisions.values()];
}

export interface MachinePrune {
  machine: string;
  timezone: string;
  retention: Retention;
  kept: { id: string; reason: KeepReason }[];
  removed: string[];
}

export interface PruneReport {
  id: string;
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  machines: MachinePrune[];
  imagesKept: number;
  imagesRemoved: number;
  errors: string[];
}

export class Pruner {
  private running: Promise<PruneReport> | null = null;

  constructor(
    private readonly repository: Repository,
    private readonly policies: Policies,
    private readonly log: Logger,
  ) {
    repository.catalog.db.exec(`CREATE TABLE IF NOT EXISTS prune_runs (
      id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, dry_run INTEGER NOT NULL,
      images_removed INTEGER NOT NULL, report TEXT NOT NULL)`);
  }

  /** Apply every machine's retention (or one machine's); admins only. */
  prune(principal: Principal, options: { machine?: string; dryRun?: boolean }): Promise<PruneReport> {
    requireRole(principal, 'admin');
    return this.run(options);
  }

  /** One prune at a time: a second request waits for the first and then runs. */
  async run(options: { machine?: string; dryRun?: boolean }): Promise<PruneReport> {
    while (this.running) await this.running.catch(() => undefined);
    this.running = this.pass(options);
    try {
      return await this.running;
    } finally {
      this.running = null;
    }
  }

  private async pass(options: { machine?: string; dryRun?: boolean }): Promise<PruneReport> {
    const { catalog, clock } = this.repository;
    const started = clock.now();
    const dryRun = options.dryRun === true;
    const machines = options.machine ? [options.machine] : catalog.listMachines().map((machine) => machine.name);
    const report: PruneReport = {
      id: `${timestampOf(new Date(started))}-${randomBytes(3).toString('hex')}`,
      dryRun,
      startedAt: new Date(started).toISOString(),
      finishedAt: '',
      machines: [],
      imagesKept: 0,
      imagesRemoved: 0,
      errors: [],
    };
    const bases = this.uploadBases();
    for (const machine of machines) {
      const result = await this.pruneMachine(machine, bases, dryRun, report.errors);
      if (!result) continue;
      report.machines.push(result);
      report.imagesKept += result.kept.length;
      report.imagesRemoved += result.removed.length;
    }
    report.finishedAt = new Date(clock.now()).toISOString();
    catalog.db
      .prepare(
        'INSERT INTO prune_runs (id, started_at, finished_at, dry_run, images_removed, report) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(report.id, started, clock.now(), dryRun ? 1 : 0, report.imagesRemoved, JSON.stringify(report));
    this.log.info(
      { prune: report.id, dryRun, removed: report.imagesRemoved, kept: report.imagesKept },
      'prune finished',
    );
    return report;
  }

  /** The base of a running upload stays: its commit names it as parent. */
  private uploadBases(): Set<string> {
    const rows = this.repository.catalog.db
      .prepare("SELECT parent FROM sessions WHERE state = 'open' AND parent IS NOT NULL")
      .all() as { parent: string }[];
    return new Set(rows.map((row) => row.parent));
  }

  /** Apply the machine's retention to its images (null when it has none); failures go to `errors`. */
  private async pruneMachine(
    machine: string,
    bases: Set<string>,
    dryRun: boolean,
    errors: string[],
  ): Promise<MachinePrune | null> {
    const images = this.repository.catalog.listImages(machine);
    if (images.length === 0) return null;
    const policy = this.policies.effective(machine);
    const healthy = images.filter((image) => image.state === 'ok');
    const decisions = selectRetained(
      healthy.map((image) => ({ id: image.id, time: image.createdAt })),
      policy.retention,
      policy.timezone,
    );
    const result: MachinePrune = {
      machine,
      timezone: policy.timezone,
      retention: policy.retention,
      kept: [],
      removed: [],
    };
    for (const image of images)
      if (image.state !== 'ok') result.kept.push({ id: image.id, reason: 'verification-failed' });
    for (const decision of decisions) {
      if (decision.keep) result.kept.push({ id: decision.id, reason: decision.reason! });
      else if (bases.has(decision.id)) result.kept.push({ id: decision.id, reason: 'base-of-upload' });
      else result.removed.push(decision.id);
    }
    if (!dryRun) {
      const byId = new Map<string, ImageRecord>(images.map((image) => [image.id, image]));
      for (const id of [...result.removed]) {
        try {
          await this.repository.removeImage(byId.get(id)!);
        } catch (error) {
          errors.push(`${id}: ${(error as Error).message}`);
          result.removed.splice(result.removed.indexOf(id), 1);
        }
      }
    }
    result.kept.sort((a, b) => (a.id < b.id ? 1 : -1));
    result.removed.sort().reverse();
    return result;
  }

  history(principal: Principal, limit = 50): PruneReport[] {
    requireRole(principal, 'admin', 'auditor');
    const rows = this.repository.catalog.db
      .prepare('SELECT report FROM prune_runs ORDER BY started_at DESC LIMIT ?')
      .all(limit) as { report: string }[];
    return rows.map((row) => JSON.parse(row.report) as PruneReport);
  }

  totalRemoved(): number {
    const row = this.repository.catalog.db
      .prepare('SELECT COALESCE(SUM(images_removed), 0) AS removed FROM prune_runs WHERE dry_run = 0')
      .get() as { removed: number };
    return row.removed;
  }
}
