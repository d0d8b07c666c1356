// Incidents: something an admin must hear about (a failed run, a missed run, a silent
// agent, a filling repository). At most one is open per kind and subject; it is
// announced when opened, again at an interval while open, and once when resolved.
import type { Catalog } from '../catalog/catalog.js';
import { rowLimit, whereClause } from '../catalog/row-filter.js';

export type IncidentKind = 'run-failed' | 'missed-run' | 'agent-silent' | 'low-space';
export type IncidentEvent = 'opened' | 'updated' | 'reminder' | 'resolved';

export interface Incident {
  id: number;
  kind: IncidentKind;
  /** The machine, or `repository`. */
  subject: string;
  state: 'open' | 'resolved';
  openedAt: number;
  updatedAt: number;
  resolvedAt: number | null;
  summary: string;
  detail: Record<string, unknown>;
  /** How many times the condition was seen while open (failed runs, missed runs). */
  occurrences: number;
  lastNotifiedAt: number | null;
  notifications: number;
  resolution: string | null;
}

export type IncidentListener = (incident: Incident, event: IncidentEvent) => void;

interface IncidentRow {
  id: number;
  kind: IncidentKind;
  subject: string;
  state: 'open' | 'resolved';
  opened_at: number;
  updated_at: number;
  resolved_at: number | null;
  summary: string;
  detail: string;
  occurrences: number;
  last_notified_at: number | null;
  notifications: number;
  resolution: string | null;
}

function fromRow(row: IncidentRow): Incident {
  return {
    id: row.id,
    kind: row.kind,
    subject: row.subject,
    state: row.state,
    openedAt: row.opened_at,
    updatedAt: row.updated_at,
    resolvedAt: row.resolved_at,
    summary: row.summary,
    detail: JSON.parse(row.detail) as Record<string, unknown>,
    occurrences: row.occurrences,
    lastNotifiedAt: row.last_notified_at,
    notifications: row.notifications,
    resolution: row.resolution,
  };
}

export function incidentView(incident: Incident) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    ...incident,
    openedAt: iso(incident.openedAt)!,
    updatedAt: iso(incident.updatedAt)!,
    resolvedAt: iso(incident.resolvedAt),
    lastNotifiedAt: iso(incident.lastNotifiedAt),
  };
}

export class Incidents {
  private readonly listeners: IncidentListener[] = [];

  constructor(private readonly catalog: Catalog) {
    catalog.db.exec(`CREATE TABLE IF NOT EXISTS incidents (
      id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, state TEXT NOT NULL, opened_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL, resolved_at INTEGER, summary TEXT NOT NULL, detail TEXT NOT NULL, occurrences INTEGER NOT NULL,
      last_notified_at INTEGER, notifications INTEGER NOT NULL DEFAULT 0, resolution TEXT);
      CREATE UNIQUE INDEX IF NOT EXISTS incidents_open ON incidents (kind, subject) WHERE state = 'open';`);
  }

  /** Told of every announcement: the notifier subscribes here. */
  onEvent(listener: IncidentListener): void {
    this.listeners.push(listener);
  }

  private emit(incident: Incident, event: IncidentEvent): void {
    const now = this.catalog.now();
    this.catalog.db
      .prepare('UPDATE incidents SET last_notified_at = ?, notifications = notifications + 1 WHERE id = ?')
      .run(now, incident.id);
    const current = this.byId(incident.id)!;
    for (const listener of this.listeners) listener(current, event);
  }

  byId(id: number): Incident | null {
    const row = this.catalog.db.prepare('SELECT * FROM incidents WHERE id = ?').get(id) as IncidentRow | undefined;
    return row ? fromRow(row) : null;
  }

  openIncident(kind: IncidentKind, subject: string): Incident | null {
    const row = this.catalog.db
      .prepare("SELECT * FROM incidents WHERE kind = ? AND subject = ? AND state = 'open'")
      .get(kind, subject) as IncidentRow | undefined;
    return row ? fromRow(row) : null;
  }

  /**
   * Open an incident, or note the condition again on the open one. `announceAgain`
   * says whether seeing it again is news (another failed run) or not (still silent).
   */
  raise(
    kind: IncidentKind,
    subject: string,
    summary: string,
    detail: Record<string, unknown>,
    options: { announceAgain?: boolean; occurrence?: boolean } = {},
  ): Incident {
    const now = this.catalog.now();
    const existing = this.openIncident(kind, subject);
    if (existing) {
      const counted = options.occurrence ?? options.announceAgain ?? false;
      this.catalog.db
        .prepare(
          'UPDATE incidents SET summary = ?, detail = ?, updated_at = ?, occurrences = occurrences + ? WHERE id = ?',
        )
        .run(summary, JSON.stringify(detail), now, counted ? 1 : 0, existing.id);
      const updated = this.byId(existing.id)!;
      if (options.announceAgain) this.emit(updated, 'updated');
      return updated;
    }
    const id = Number(
      this.catalog.db
        .prepare(
          "INSERT INTO incidents (kind, subject, state, opened_at, updated_at, summary, detail, occurrences) VALUES (?, ?, 'open', ?, ?, ?, ?, 1)",
        )
        .run(kind, subject, now, now, summary, JSON.stringify(detail)).lastInsertRowid,
    );
    const incident = this.byId(id)!;
    this.emit(incident, 'opened');
    return incident;
  }

  resolve(kind: IncidentKind, subject: string, resolution: string): Incident | null {
    const existing = this.openIncident(kind, subject);
    if (!existing) return null;
    const now = this.catalog.now();
    this.catalog.db
      .prepare("UPDATE incidents SET state = 'resolved', resolved_at = ?, updated_at = ?, resolution = ? WHERE id = ?")
      .run(now, now, resolution, existing.id);
    const resolved = this.byId(existing.id)!;
    this.emit(resolved, 'resolved');
    return resolved;
  }

  /** Announce again every open incident not announced for `intervalMs`. */
  remind(intervalMs: number): number {
    const due = this.catalog.db
      .prepare("SELECT * FROM incidents WHERE state = 'open' AND (last_notified_at IS NULL OR last_notified_at <= ?)")
      .all(this.catalog.now() - intervalMs) as IncidentRow[];
    for (const row of due) this.emit(fromRow(row), 'reminder');
    return due.length;
  }

  list(filter: { state?: 'open' | 'resolved'; subject?: string; limit?: number } = {}): Incident[] {
    const { where, values } = whereClause([
      ['state = ?', filter.state || undefined],
      ['subject = ?', filter.subject || undefined],
    ]);
    const rows = this.catalog.db
      .prepare(`SELECT * FROM incidents ${where} ORDER BY id DESC LIMIT ${rowLimit(filter.limit, 500)}`)
      .all(...values) as IncidentRow[];
    return rows.map(fromRow);
  }

  openCounts(): { kind: IncidentKind; count: number }[] {
    return this.catalog.db
      .prepare("SELECT kind, COUNT(*) AS count FROM incidents WHERE state = 'open' GROUP BY kind")
      .all() as { kind: IncidentKind; count: number }[];
  }
}
