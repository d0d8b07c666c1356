// Agents and the reports of their runs. Every run leaves one report, successful or
// not: the agent sends it at start, as it progresses and at the end, and the server
// closes a report whose agent fell silent. Times are the server's: an agent's clock is
// corrected by the difference between its `sentAt` and the moment the report arrives.
import { NotFoundError, UsageError } from '../src/core/errors.js';
import { assertMachineName } from '../src/format/image-ref.js';
import {
  type RunOutcome,
  type RunProgress,
  type RunReport,
  type RunState,
  type RunTrigger,
  parseRunReport,
} from '../src/format/run-report.js';
import { type Principal, requireMachineAccess, requireRole } from './auth.js';
import type { Catalog } from './catalog/catalog.js';
import { rowLimit, whereClause } from './catalog/row-filter.js';

export interface RunRecord extends RunOutcome {
  id: string;
  machine: string;
  trigger: RunTrigger;
  scheduledFor: number | null;
  state: RunState;
  startedAt: number;
  finishedAt: number | null;
  updatedAt: number;
  attempts: number;
  disks: string[];
  progress: RunProgress | null;
  agentVersion: string;
  /** Who closed the report: the agent, or the server when the agent fell silent. */
  closedBy: 'agent' | 'server' | null;
}

export interface AgentRecord {
  machine: string;
  firstSeenAt: number;
  lastHeartbeatAt: number;
  hostname: string | null;
  version: string | null;
  state: string | null;
  nextRunAt: number | null;
  currentRun: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function runView(run: RunRecord) {
  return {
    ...run,
    scheduledFor: iso(run.scheduledFor),
    startedAt: iso(run.startedAt)!,
    finishedAt: iso(run.finishedAt),
    updatedAt: iso(run.updatedAt)!,
    durationMs: run.finishedAt === null ? null : run.finishedAt - run.startedAt,
  };
}
export type RunView = ReturnType<typeof runView>;

export function agentView(agent: AgentRecord) {
  return {
    ...agent,
    firstSeenAt: iso(agent.firstSeenAt)!,
    lastHeartbeatAt: iso(agent.lastHeartbeatAt)!,
    nextRunAt: iso(agent.nextRunAt),
  };
}

interface RunRow {
  id: string;
  machine: string;
  trigger: RunTrigger;
  scheduled_for: number | null;
  state: RunState;
  started_at: number;
  finished_at: number | null;
  updated_at: number;
  attempts: number;
  disks: string;
  image: string | null;
  bytes_read: number;
  bytes_uploaded: number;
  chunks_new: number;
  chunks_reused: number;
  warnings: string;
  error: string | null;
  progress: string | null;
  agent_version: string;
  closed_by: 'agent' | 'server' | null;
}

function runFromRow(row: RunRow): RunRecord {
  return {
    id: row.id,
    machine: row.machine,
    trigger: row.trigger,
    scheduledFor: row.scheduled_for,
    state: row.state,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    updatedAt: row.updated_at,
    attempts: row.attempts,
    disks: JSON.parse(row.disks) as string[],
    image: row.image,
    bytesRead: row.bytes_read,
    bytesUploaded: row.bytes_uploaded,
    chunksNew: row.chunks_new,
    chunksReused: row.chunks_reused,
    warnings: JSON.parse(row.warnings) as string[],
    error: row.error,
    progress: row.progress ? (JSON.parse(row.progress) as RunProgress) : null,
    agentVersion: row.agent_version,
    closedBy: row.closed_by,
  };
}

export type RunListener = (run: RunRecord) => void;

export class Runs {
  private readonly finishedListeners: RunListener[] = [];

  constructor(private readonly catalog: Catalog) {
    catalog.db.exec(`
      CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, machine TEXT NOT NULL, trigger TEXT NOT NULL, scheduled_for INTEGER,
        state TEXT NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER, updated_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL, disks TEXT NOT NULL, image TEXT, bytes_read INTEGER NOT NULL,
        bytes_uploaded INTEGER NOT NULL, chunks_new INTEGER NOT NULL, chunks_reused INTEGER NOT NULL,
        warnings TEXT NOT NULL, error TEXT, progress TEXT, agent_version TEXT NOT NULL, closed_by TEXT);
      CREATE INDEX IF NOT EXISTS runs_by_machine ON runs (machine, started_at);
      CREATE INDEX IF NOT EXISTS runs_by_schedule ON runs (machine, scheduled_for);
      CREATE TABLE IF NOT EXISTS agents (
        machine TEXT PRIMARY KEY, first_seen_at INTEGER NOT NULL, last_heartbeat_at INTEGER NOT NULL,
        hostname TEXT, version TEXT, state TEXT, next_run_at INTEGER, current_run TEXT);`);
  }

  /** Called once for every report that reaches a final state. */
  onFinished(listener: RunListener): void {
    this.finishedListeners.push(listener);
  }

  run(id: string): RunRecord | null {
    const row = this.catalog.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
    return row ? runFromRow(row) : null;
  }

  get(principal: Principal, id: string): RunRecord {
    // The role first: who may not read runs must not learn which run ids exist either.
    requireRole(principal, 'admin', 'auditor', 'machine');
    const run = this.run(id);
    if (!run) throw new NotFoundError(`run ${id} does not exist`);
    requireMachineAccess(principal, run.machine, 'metadata');
    return run;
  }

  /** Store what an agent says about a run; a report the agent already closed stays as it is. */
  accept(principal: Principal, id: string, body: unknown): RunRecord {
    requireRole(principal, 'admin', 'machine');
    const report: RunReport = parseRunReport(body);
    if (report.id !== id) throw new UsageError(`the report is for run ${report.id}, not ${id}`);
    requireMachineAccess(principal, report.machine, 'write');
    const existing = this.run(id);
    if (existing && existing.machine !== report.machine)
      throw new UsageError(`run ${id} belongs to machine ${existing.machine}`);
    if (existing && existing.closedBy === 'agent') return existing;
    const now = this.catalog.now();
    const skew = now - Date.parse(report.sentAt);
    const corrected = (text: string) => Math.min(now, Date.parse(text) + skew);
    const record: RunRecord = {
      id,
      machine: report.machine,
      trigger: report.trigger,
      scheduledFor: report.scheduledFor === null ? null : Date.parse(report.scheduledFor),
      state: report.state,
      startedAt: existing?.startedAt ?? corrected(report.startedAt),
      finishedAt: report.finishedAt === null ? null : corrected(report.finishedAt),
      updatedAt: now,
      attempts: report.attempts,
      disks: report.disks,
      image: report.image,
      bytesRead: report.bytesRead,
      bytesUploaded: report.bytesUploaded,
      chunksNew: report.chunksNew,
      chunksReused: report.chunksReused,
      warnings: report.warnings,
      error: report.error,
      progress: report.progress,
      agentVersion: report.agentVersion,
      closedBy: report.state === 'running' ? null : 'agent',
    };
    this.write(record);
    this.catalog.machineSeen(report.machine);
    if (record.state !== 'running' && existing?.state !== record.state) this.finished(record);
    return this.run(id)!;
  }

  private write(run: RunRecord): void {
    this.catalog.db
      .prepare(
        `INSERT INTO runs (id, machine, trigger, scheduled_for, state, started_at, finished_at, updated_at, attempts, disks, image,
           bytes_read, bytes_uploaded, chunks_new, chunks_reused, warnings, error, progress, agent_version, closed_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET trigger = excluded.trigger, scheduled_for = excluded.scheduled_for, state = excluded.state,
           finished_at = excluded.finished_at, updated_at = excluded.updated_at, attempts = excluded.attempts, disks = excluded.disks,
           image = excluded.image, bytes_read = excluded.bytes_read, bytes_uploaded = excluded.bytes_uploaded, chunks_new = excluded.chunks_new,
           chunks_reused = excluded.chunks_reused, warnings = excluded.warnings, error = excluded.error, progress = excluded.progress,
           agent_version = excluded.agent_version, closed_by = excluded.closed_by`,
      )
      .run(
        run.id,
        run.machine,
        run.trigger,
        run.scheduledFor,
        run.state,
        run.startedAt,
        run.finishedAt,
        run.updatedAt,
        run.attempts,
        JSON.stringify(run.disks),
        run.image,
        run.bytesRead,
        run.bytesUploaded,
        run.chunksNew,
        run.chunksReused,
        JSON.stringify(run.warnings),
        run.error,
        run.progress ? JSON.stringify(run.progress) : null,
        run.agentVersion,
        run.closedBy,
      );
  }

  private finished(run: RunRecord): void {
    for (const listener of this.finishedListeners) listener(run);
  }

  list(
    principal: Principal,
    filter: { machine?: string; since?: number; state?: RunState; limit?: number } = {},
  ): RunRecord[] {
    requireRole(principal, 'admin', 'auditor', 'machine');
    let machine = filter.machine;
    if (principal.role === 'machine') {
      if (machine && machine !== principal.machine) requireMachineAccess(principal, machine, 'metadata');
      machine = principal.machine!;
    }
    return this.query({ ...filter, machine });
  }

  query(filter: { machine?: string; since?: number; until?: number; state?: RunState; limit?: number }): RunRecord[] {
    const { where, values } = whereClause([
      ['machine = ?', filter.machine ? assertMachineName(filter.machine, 'machine') : undefined],
      ['started_at >= ?', filter.since],
      ['started_at < ?', filter.until],
      ['state = ?', filter.state || undefined],
    ]);
    const rows = this.catalog.db
      .prepare(`SELECT * FROM runs ${where} ORDER BY started_at DESC, id LIMIT ${rowLimit(filter.limit, 1000)}`)
      .all(...values) as RunRow[];
    return rows.map(runFromRow);
  }

  /** A run for this occurrence, or one started within [from, to). */
  runFor(machine: string, scheduledFor: number, from: number, to: number): RunRecord | null {
    const row = this.catalog.db
      .prepare(
        'SELECT * FROM runs WHERE machine = ? AND (scheduled_for = ? OR (started_at >= ? AND started_at < ?)) ORDER BY started_at LIMIT 1',
      )
      .get(machine, scheduledFor, from, to) as RunRow | undefined;
    return row ? runFromRow(row) : null;
  }

  lastRun(machine: string, state?: RunState): RunRecord | null {
    return this.query({ machine, state, limit: 1 })[0] ?? null;
  }

  /** Close the reports of runs whose agent has said nothing since `silentSince`. */
  abandonStale(silentSince: number): RunRecord[] {
    const rows = this.catalog.db
      .prepare("SELECT * FROM runs WHERE state = 'running' AND updated_at < ?")
      .all(silentSince) as RunRow[];
    const closed: RunRecord[] = [];
    for (const row of rows) {
      const run = runFromRow(row);
      run.state = 'failed';
      run.finishedAt = run.updatedAt;
      run.error = `the agent stopped reporting on this run at ${new Date(run.updatedAt).toISOString()}`;
      run.closedBy = 'server';
      this.write(run);
      this.finished(run);
      closed.push(run);
    }
    return closed;
  }

  counts(): { state: RunState; count: number; bytesUploaded: number }[] {
    return this.catalog.db
      .prepare(
        'SELECT state, COUNT(*) AS count, COALESCE(SUM(bytes_uploaded), 0) AS bytesUploaded FROM runs GROUP BY state',
      )
      .all() as { state: RunState; count: number; bytesUploaded: number }[];
  }

  // --- agents ---------------------------------------------------------------

  heartbeat(
    principal: Principal,
    body: { hostname?: unknown; version?: unknown; state?: unknown; nextRunAt?: unknown; currentRun?: unknown },
  ): AgentRecord {
    requireRole(principal, 'machine');
    const machine = principal.machine!;
    const text = (value: unknown, limit = 200) => (typeof value === 'string' ? value.slice(0, limit) : null);
    const nextRunAt =
      typeof body.nextRunAt === 'string' && !Number.isNaN(Date.parse(body.nextRunAt))
        ? Date.parse(body.nextRunAt)
        : null;
    const now = this.catalog.now();
    this.catalog.db
      .prepare(
        `INSERT INTO agents (machine, first_seen_at, last_heartbeat_at, hostname, version, state, next_run_at, current_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (machine) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at, hostname = excluded.hostname, version = excluded.version,
           state = excluded.state, next_run_at = excluded.next_run_at, current_run = excluded.current_run`,
      )
      .run(
        machine,
        now,
        now,
        text(body.hostname),
        text(body.version),
        text(body.state),
        nextRunAt,
        text(body.currentRun),
      );
    this.catalog.machineSeen(machine);
    return this.agent(machine)!;
  }

  agent(machine: string): AgentRecord | null {
    return (
      (this.catalog.db
        .prepare(
          `SELECT machine, first_seen_at AS firstSeenAt, last_heartbeat_at AS lastHeartbeatAt, hostname, version, state,
             next_run_at AS nextRunAt, current_run AS currentRun FROM agents WHERE machine = ?`,
        )
        .get(machine) as AgentRecord | undefined) ?? null
    );
  }

  agents(): AgentRecord[] {
    return this.catalog.db
      .prepare(
        `SELECT machine, first_seen_at AS firstSeenAt, last_heartbeat_at AS lastHeartbeatAt, hostname, version, state,
           next_run_at AS nextRunAt, current_run AS currentRun FROM agents ORDER BY machine`,
      )
      .all() as AgentRecord[];
  }

  /** Stop watching a machine's agent (a machine taken out of service). */
  forgetAgent(machine: string): void {
    const result = this.catalog.db.prepare('DELETE FROM agents WHERE machine = ?').run(machine);
    if (result.changes === 0) throw new NotFoundError(`machine ${machine} has no agent`);
  }
}
