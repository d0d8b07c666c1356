// Policies kept by the server: the default one and each machine's differences from
// it. The effective policy of a machine is builtin defaults < default < machine.
import { NotFoundError, UsageError } from '../src/core/errors.js';
import { assertMachineName } from '../src/format/image-ref.js';
import {
  DEFAULT_POLICY_NAME,
  type Policy,
  type PolicyOverrides,
  builtinPolicy,
  effectivePolicy,
  mergeOverrides,
  parsePolicyOverrides,
} from '../src/format/policy.js';
import type { Catalog } from './catalog/catalog.js';

export interface PolicyView {
  name: string;
  /** What is set on this name; the rest is inherited. */
  overrides: PolicyOverrides;
  effective: Policy;
  updatedAt: string | null;
}

export class Policies {
  constructor(
    private readonly catalog: Catalog,
    private readonly timezone: string,
  ) {
    catalog.db.exec(`CREATE TABLE IF NOT EXISTS policies (
      name TEXT PRIMARY KEY, overrides TEXT NOT NULL, updated_at INTEGER NOT NULL)`);
  }

  private stored(name: string): { overrides: PolicyOverrides; updatedAt: number } | null {
    const row = this.catalog.db.prepare('SELECT overrides, updated_at FROM policies WHERE name = ?').get(name) as
      | { overrides: string; updated_at: number }
      | undefined;
    return row ? { overrides: JSON.parse(row.overrides) as PolicyOverrides, updatedAt: row.updated_at } : null;
  }

  private static checkName(name: string): string {
    return name === DEFAULT_POLICY_NAME ? name : assertMachineName(name, 'policy name');
  }

  /** The policy a machine's agent follows. */
  effective(machine: string): Policy {
    const layers = [this.stored(DEFAULT_POLICY_NAME)?.overrides ?? {}];
    if (machine !== DEFAULT_POLICY_NAME) layers.push(this.stored(machine)?.overrides ?? {});
    return effectivePolicy(builtinPolicy(this.timezone), ...layers);
  }

  /** When the policy a machine follows last changed (its own or the default). */
  changedAt(machine: string): number {
    return Math.max(this.stored(DEFAULT_POLICY_NAME)?.updatedAt ?? 0, this.stored(machine)?.updatedAt ?? 0);
  }

  view(name: string): PolicyView {
    Policies.checkName(name);
    const stored = this.stored(name);
    return {
      name,
      overrides: stored?.overrides ?? {},
      effective: this.effective(name),
      updatedAt: stored ? new Date(stored.updatedAt).toISOString() : null,
    };
  }

  list(): PolicyView[] {
    const names = (this.catalog.db.prepare('SELECT name FROM policies ORDER BY name').all() as { name: string }[]).map(
      (row) => row.name,
    );
    if (!names.includes(DEFAULT_POLICY_NAME)) names.unshift(DEFAULT_POLICY_NAME);
    return names
      .sort((a, b) => (a === DEFAULT_POLICY_NAME ? -1 : b === DEFAULT_POLICY_NAME ? 1 : a.localeCompare(b)))
      .map((name) => this.view(name));
  }

  /** Change some fields of a policy; a null field goes back to inheriting. */
  set(name: string, change: unknown): PolicyView {
    Policies.checkName(name);
    if (typeof change !== 'object' || change === null || Array.isArray(change))
      throw new UsageError('a policy change is a JSON object of the fields to set');
    parsePolicyOverrides(change, `policy ${name}`);
    const merged = mergeOverrides(this.stored(name)?.overrides ?? {}, change as Record<string, unknown>);
    // The schedule is read in the zone it will run in, which may come from another layer.
    const effective = effectivePolicy(this.effective(name), merged);
    parsePolicyOverrides({ schedule: effective.schedule, timezone: effective.timezone }, `policy ${name}`);
    this.catalog.db
      .prepare(
        'INSERT INTO policies (name, overrides, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET overrides = excluded.overrides, updated_at = excluded.updated_at',
      )
      .run(name, JSON.stringify(merged), this.catalog.now());
    return this.view(name);
  }

  /** Forget a machine's own policy (it follows the default again), or reset the default. */
  remove(name: string): PolicyView {
    Policies.checkName(name);
    const result = this.catalog.db.prepare('DELETE FROM policies WHERE name = ?').run(name);
    if (result.changes === 0 && name !== DEFAULT_POLICY_NAME)
      throw new NotFoundError(`machine ${name} has no policy of its own`);
    // Recorded as a change, so missed-run checks restart from now.
    if (name === DEFAULT_POLICY_NAME)
      this.catalog.db
        .prepare('INSERT INTO policies (name, overrides, updated_at) VALUES (?, ?, ?)')
        .run(name, '{}', this.catalog.now());
    return this.view(name);
  }

  /** Names with a policy of their own (machines or the default). */
  names(): string[] {
    return (this.catalog.db.prepare('SELECT name FROM policies').all() as { name: string }[]).map((row) => row.name);
  }
}
