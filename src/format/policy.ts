// Backup policies: when a machine's agent images which disks, how, and how long the
// server keeps the images. One default policy; a machine's own policy names only what
// differs from it. Parsed in one place, for the server's API and the agent's cache.
import { Ajv, type ErrorObject } from 'ajv';
import { FormatError, UsageError } from '../core/errors.js';
import { Schedule, assertTimeZone } from '../core/schedule.js';
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './chunk.js';

/** How mounted read-write filesystems are read: the same choices as `b365 image`. */
export type LiveMode = 'crash-consistent' | 'freeze' | 'refuse';

export const DEFAULT_POLICY_NAME = 'default';
export const LIVE_MODES: LiveMode[] = ['crash-consistent', 'freeze', 'refuse'];

export interface Retention {
  keepLast: number;
  keepHourly: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  keepYearly: number;
}

export const RETENTION_KEYS: (keyof Retention)[] = [
  'keepLast',
  'keepHourly',
  'keepDaily',
  'keepWeekly',
  'keepMonthly',
  'keepYearly',
];

export interface Policy {
  /** Cron expression (5 or 6 fields), read in `timezone`. */
  schedule: string;
  timezone: string;
  /** False: the agent takes no scheduled images and nobody is told about missed runs. */
  enabled: boolean;
  /** Block devices or disk image files; empty means every fixed disk the agent finds. */
  disks: string[];
  live: LiveMode;
  raw: boolean;
  /** Bytes, or 'auto' to let the capture pick per volume. */
  chunkSize: number | 'auto';
  /** Each run starts at a random moment this long after its scheduled time at most. */
  spreadSeconds: number;
  /** A run that has not started this long after its scheduled time is a missed run. */
  windowSeconds: number;
  retention: Retention;
}

/** What a stored policy holds: any field, absent ones inherit the default. */
export type PolicyOverrides = Partial<Omit<Policy, 'retention'>> & { retention?: Partial<Retention> };

export function builtinPolicy(timezone: string): Policy {
  return {
    schedule: '0 2 * * *',
    timezone,
    enabled: true,
    disks: [],
    live: 'crash-consistent',
    raw: false,
    chunkSize: 'auto',
    spreadSeconds: 600,
    windowSeconds: 4 * 3600,
    retention: { keepLast: 0, keepHourly: 0, keepDaily: 14, keepWeekly: 8, keepMonthly: 12, keepYearly: 0 },
  };
}

const count = { type: 'integer', minimum: 0, maximum: 100000 };
const retentionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(RETENTION_KEYS.map((key) => [key, count])),
};
export const overridesSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    schedule: { type: 'string', minLength: 1, maxLength: 200 },
    timezone: { type: 'string', minLength: 1, maxLength: 100 },
    enabled: { type: 'boolean' },
    disks: { type: 'array', maxItems: 64, items: { type: 'string', pattern: '^/[^,\\u0000]*$', maxLength: 4096 } },
    live: { enum: LIVE_MODES },
    raw: { type: 'boolean' },
    chunkSize: { anyOf: [{ const: 'auto' }, { type: 'integer', minimum: MIN_CHUNK_SIZE, maximum: MAX_CHUNK_SIZE }] },
    spreadSeconds: { type: 'integer', minimum: 0, maximum: 86400 },
    windowSeconds: { type: 'integer', minimum: 60, maximum: 7 * 86400 },
    retention: retentionSchema,
  },
};
const policySchema = {
  ...overridesSchema,
  required: [...Object.keys(overridesSchema.properties)],
  properties: { ...overridesSchema.properties, retention: { ...retentionSchema, required: RETENTION_KEYS } },
};

const ajv = new Ajv({ allErrors: false, strict: true });
const validateOverrides = ajv.compile(overridesSchema);
const validatePolicy = ajv.compile(policySchema);

function describe(errors: ErrorObject[] | null | undefined, what: string): string {
  const first = errors?.[0];
  if (!first) return `invalid ${what}`;
  const where = first.instancePath || '/';
  const extra =
    first.keyword === 'additionalProperties'
      ? ` (${(first.params as { additionalProperty: string }).additionalProperty})`
      : '';
  return `invalid ${what}: ${where} ${first.message}${extra}`;
}

function checkMeaning(value: PolicyOverrides, what: string): void {
  if (value.timezone !== undefined) assertTimeZone(value.timezone);
  if (value.schedule !== undefined) new Schedule(value.schedule, value.timezone ?? 'UTC');
  if (typeof value.chunkSize === 'number' && (value.chunkSize & (value.chunkSize - 1)) !== 0)
    throw new UsageError(`${what}: chunkSize must be a power of two`);
}

/** A change to a policy as sent to the server; null fields are taken as "inherit". */
export function parsePolicyOverrides(body: unknown, what = 'policy'): PolicyOverrides {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new FormatError(`invalid ${what}: expected an object`);
  const cleaned = dropNulls(body as Record<string, unknown>);
  if (!validateOverrides(cleaned)) throw new FormatError(describe(validateOverrides.errors, what));
  const overrides = cleaned as PolicyOverrides;
  checkMeaning(overrides, what);
  return overrides;
}

/** A whole policy, as the agent receives and caches it. */
export function parsePolicy(value: unknown, what = 'policy'): Policy {
  if (!validatePolicy(value)) throw new FormatError(describe(validatePolicy.errors, what));
  const policy = value as unknown as Policy;
  checkMeaning(policy, what);
  return policy;
}

function dropNulls(value: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item === null) continue;
    result[key] =
      item && typeof item === 'object' && !Array.isArray(item) ? dropNulls(item as Record<string, unknown>) : item;
  }
  return result;
}

/** Apply `change` to stored overrides: a null field removes that override. */
export function mergeOverrides(stored: PolicyOverrides, change: Record<string, unknown>): PolicyOverrides {
  const result: Record<string, unknown> = { ...stored };
  for (const [key, value] of Object.entries(change)) {
    if (key === 'retention' && value && typeof value === 'object') {
      const retention: Record<string, unknown> = { ...(stored.retention ?? {}) };
      for (const [inner, amount] of Object.entries(value as Record<string, unknown>)) {
        if (amount === null) delete retention[inner];
        else retention[inner] = amount;
      }
      if (Object.keys(retention).length) result.retention = retention;
      else delete result.retention;
    } else if (value === null) {
      delete result[key];
    } else {
      result[key] = value;
    }
  }
  return result as PolicyOverrides;
}

export function effectivePolicy(base: Policy, ...layers: PolicyOverrides[]): Policy {
  let policy: Policy = { ...base, retention: { ...base.retention } };
  for (const layer of layers) {
    const { retention, ...rest } = layer;
    policy = { ...policy, ...rest, retention: { ...policy.retention, ...(retention ?? {}) } };
  }
  return policy;
}
