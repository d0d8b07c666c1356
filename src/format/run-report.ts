// The report of one agent run, as the agent sends it (again and again, as the run
// progresses, until the server has its final state). Parsed in one place on the server.
import { Ajv } from 'ajv';
import { FormatError } from '../core/errors.js';
import { MACHINE_NAME_PATTERN } from './manifest.js';

export type RunState = 'running' | 'ok' | 'failed';
export type RunTrigger = 'schedule' | 'manual';

export interface RunProgress {
  stage: string;
  bytesDone: number;
  bytesTotal: number;
  bytesUploaded: number;
}

/** What a run produced: the same fields in the agent's report, the server's record and the CLI's view. */
export interface RunOutcome {
  image: string | null;
  bytesRead: number;
  bytesUploaded: number;
  chunksNew: number;
  chunksReused: number;
  warnings: string[];
  error: string | null;
}

export interface RunReport extends RunOutcome {
  id: string;
  machine: string;
  trigger: RunTrigger;
  /** The occurrence of the schedule this run serves (ISO), null for a manual run. */
  scheduledFor: string | null;
  state: RunState;
  startedAt: string;
  finishedAt: string | null;
  /** How many times the run was tried (the server unreachable, for instance). */
  attempts: number;
  disks: string[];
  progress: RunProgress | null;
  agentVersion: string;
  /** The agent's clock when it sent this: the server corrects the other times by it. */
  sentAt: string;
}

const iso = { type: 'string', format: 'date-time-ish', maxLength: 40 };
const bytes = { type: 'integer', minimum: 0 };
export const runReportSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'machine',
    'trigger',
    'scheduledFor',
    'state',
    'startedAt',
    'finishedAt',
    'attempts',
    'disks',
    'image',
    'bytesRead',
    'bytesUploaded',
    'chunksNew',
    'chunksReused',
    'warnings',
    'error',
    'progress',
    'agentVersion',
    'sentAt',
  ],
  properties: {
    id: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' },
    machine: { type: 'string', pattern: MACHINE_NAME_PATTERN },
    trigger: { enum: ['schedule', 'manual'] },
    scheduledFor: { anyOf: [iso, { type: 'null' }] },
    state: { enum: ['running', 'ok', 'failed'] },
    startedAt: iso,
    finishedAt: { anyOf: [iso, { type: 'null' }] },
    attempts: { type: 'integer', minimum: 0, maximum: 1000000 },
    disks: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 4096 } },
    image: { anyOf: [{ type: 'string', maxLength: 200 }, { type: 'null' }] },
    bytesRead: bytes,
    bytesUploaded: bytes,
    chunksNew: bytes,
    chunksReused: bytes,
    warnings: { type: 'array', maxItems: 1000, items: { type: 'string', maxLength: 4096 } },
    error: { anyOf: [{ type: 'string', maxLength: 16384 }, { type: 'null' }] },
    progress: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['stage', 'bytesDone', 'bytesTotal', 'bytesUploaded'],
          properties: {
            stage: { type: 'string', maxLength: 4096 },
            bytesDone: bytes,
            bytesTotal: bytes,
            bytesUploaded: bytes,
          },
        },
      ],
    },
    agentVersion: { type: 'string', maxLength: 100 },
    sentAt: iso,
  },
} as const;

const ajv = new Ajv({
  allErrors: false,
  strict: true,
  formats: { 'date-time-ish': (text: string) => !Number.isNaN(Date.parse(text)) },
});
const validate = ajv.compile(runReportSchema);

export function parseRunReport(body: unknown): RunReport {
  if (!validate(body)) {
    const first = validate.errors?.[0];
    throw new FormatError(
      `invalid run report: ${first ? `${first.instancePath || '/'} ${first.message}` : 'rejected'}`,
    );
  }
  const report = body as RunReport;
  if (report.state !== 'running' && report.finishedAt === null)
    throw new FormatError('invalid run report: a finished run needs /finishedAt');
  return report;
}
