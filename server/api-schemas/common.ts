// Schemas several operations share: identifiers, times, the error body, and the named
// response shapes the document lists under components (clients are typed from them).
import { MACHINE_NAME_PATTERN } from '../../src/format/manifest.js';
import type { Schema } from './operation.js';

export const digest: Schema = {
  type: 'string',
  pattern: '^[0-9a-f]{64}$',
  'x-expect': 'a digest: 64 lowercase hex characters',
};
/** Worded as assertMachineName words it, wherever the name enters. */
export const machineName: Schema = {
  type: 'string',
  pattern: MACHINE_NAME_PATTERN,
  'x-type': 'a machine name must be a string',
  'x-invalid':
    'invalid machine name {value}: use 1-64 letters, digits, dot, dash or underscore, starting with a letter or digit',
};
export const imageId: Schema = {
  type: 'string',
  minLength: 1,
  maxLength: 200,
  description: 'MACHINE@TIMESTAMP (20261126T020013Z) or MACHINE@latest',
};
export const uuid: Schema = {
  type: 'string',
  pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
  'x-expect': 'a lowercase UUID',
};
export const numericId: Schema = { type: 'string', pattern: '^[0-9]{1,15}$', 'x-expect': 'a number' };
export const jobId: Schema = { type: 'string', minLength: 1, maxLength: 100 };
export const time: Schema = { type: 'string', format: 'date-time' };
export const nullableTime: Schema = { anyOf: [time, { type: 'null' }] };
export const nullableString: Schema = { anyOf: [{ type: 'string' }, { type: 'null' }] };
export const count: Schema = { type: 'integer', minimum: 0 };

/** A lifetime in whole seconds, as the handlers bound it (see server/request-fields.ts). */
export function ttlSeconds(maxSeconds: number): Schema {
  return {
    anyOf: [{ type: 'integer', minimum: 1, maximum: maxSeconds }, { type: 'null' }],
    'x-expect': `a whole number of seconds from 1 to ${maxSeconds}`,
  };
}

/** A JSON object with exactly these fields; `required` lists the ones that must be there. */
export function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', additionalProperties: false, properties, ...(required.length ? { required } : {}) };
}

/** A response object: the fields named here are always present; servers may add fields. */
export function shape(properties: Record<string, Schema>, required = Object.keys(properties)): Schema {
  return { type: 'object', properties, required };
}

export const ref = (name: keyof typeof components): Schema => ({ $ref: `#/components/schemas/${name}` });
export const listOf = (key: string, name: keyof typeof components): Schema =>
  shape({ [key]: { type: 'array', items: ref(name) } });

const role: Schema = { enum: ['admin', 'machine', 'auditor', 'restore'] };

export const components = {
  Error: {
    type: 'object',
    description:
      'Every refusal: a stable code, a message naming what was wrong, and sometimes details (missing digests, free bytes).',
    required: ['code', 'message'],
    properties: { code: { type: 'string' }, message: { type: 'string' } },
  },
  Image: shape({
    id: imageId,
    machine: machineName,
    timestamp: { type: 'string' },
    createdAt: time,
    manifestDigest: digest,
    parent: nullableString,
    diskKeys: { type: 'array', items: { type: 'string' } },
    sizeBytes: count,
    usedBytes: count,
    uploadedBytes: count,
    storedBytes: count,
    state: { type: 'string', description: 'ok, or failed (verification found damage)' },
    stateReason: nullableString,
  }),
  Session: shape({
    id: uuid,
    machine: machineName,
    state: { type: 'string' },
    parent: nullableString,
    leaseExpiresAt: time,
    image: nullableString,
  }),
  Machine: shape({
    name: machineName,
    createdAt: time,
    lastSeenAt: nullableTime,
    imageCount: count,
    latestImage: nullableString,
  }),
  Token: shape({
    id: count,
    role,
    machine: nullableString,
    label: nullableString,
    createdAt: time,
    expiresAt: nullableTime,
    revokedAt: nullableTime,
    lastUsedAt: nullableTime,
  }),
  RestoreCode: shape({
    id: count,
    machine: machineName,
    capture: { type: 'boolean' },
    createdAt: time,
    expiresAt: time,
    revokedAt: nullableTime,
    uses: count,
    lastUsedAt: nullableTime,
  }),
  Verification: shape({
    id: jobId,
    level: { enum: ['structural', 'content', 'restore-stream'] },
    scope: shape({ all: { type: 'boolean' }, images: { type: 'array', items: { type: 'string' } } }),
    state: { enum: ['queued', 'running', 'done', 'error'] },
    result: { anyOf: [{ enum: ['ok', 'failed'] }, { type: 'null' }] },
    startedAt: nullableTime,
    finishedAt: nullableTime,
    progress: shape({ done: count, total: count, stage: { type: 'string' } }),
    reportDigest: { anyOf: [digest, { type: 'null' }] },
    error: nullableString,
  }),
  Policy: shape({
    name: { type: 'string' },
    overrides: { type: 'object' },
    effective: { type: 'object' },
    updatedAt: nullableTime,
  }),
  Agent: shape({
    machine: machineName,
    firstSeenAt: time,
    lastHeartbeatAt: time,
    hostname: nullableString,
    version: nullableString,
    state: nullableString,
    nextRunAt: nullableTime,
    currentRun: nullableString,
  }),
  Run: shape(
    {
      id: uuid,
      machine: machineName,
      trigger: { enum: ['schedule', 'manual'] },
      state: { enum: ['running', 'ok', 'failed'] },
      scheduledFor: nullableTime,
      startedAt: time,
      finishedAt: nullableTime,
      updatedAt: time,
      durationMs: { anyOf: [count, { type: 'null' }] },
      image: nullableString,
      bytesUploaded: count,
      error: nullableString,
      closedBy: { anyOf: [{ enum: ['agent', 'server'] }, { type: 'null' }] },
    },
    ['id', 'machine', 'trigger', 'state', 'startedAt', 'finishedAt', 'updatedAt'],
  ),
  Incident: shape(
    {
      id: count,
      kind: { type: 'string' },
      subject: { type: 'string' },
      state: { enum: ['open', 'resolved'] },
      openedAt: time,
      updatedAt: time,
      resolvedAt: nullableTime,
      summary: { type: 'string' },
      occurrences: count,
    },
    ['id', 'kind', 'subject', 'state', 'openedAt', 'summary'],
  ),
  GcJob: shape({
    id: jobId,
    dryRun: { type: 'boolean' },
    graceSeconds: count,
    state: { enum: ['running', 'done', 'error'] },
    startedAt: time,
    finishedAt: nullableTime,
    stage: { type: 'string' },
    report: { type: 'object' },
    error: nullableString,
  }),
  PruneReport: shape({
    id: jobId,
    dryRun: { type: 'boolean' },
    startedAt: time,
    finishedAt: time,
    machines: { type: 'array', items: { type: 'object' } },
    imagesKept: count,
    imagesRemoved: count,
    errors: { type: 'array', items: { type: 'string' } },
  }),
  ReindexJob: shape({
    id: jobId,
    state: { enum: ['running', 'done', 'error'] },
    startedAt: time,
    finishedAt: nullableTime,
    report: { anyOf: [{ type: 'object' }, { type: 'null' }] },
    error: nullableString,
  }),
} satisfies Record<string, Schema>;
