// The server's configuration file (JSON, `b365 server --config FILE`): monitoring,
// notifications, retention and garbage-collection schedules. Every setting has a
// default, so no file at all is a valid configuration. See docs/server-config.md.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parseDurationSeconds } from '../src/core/duration.js';
import { FormatError, UsageError } from '../src/core/errors.js';
import { Schedule, localTimeZone } from '../src/core/schedule.js';
import { TrustedProxies } from './client-address.js';

export interface SmtpSettings {
  host: string;
  port: number;
  /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
  secure: boolean;
  /** Refuse to send unless STARTTLS succeeds. */
  requireTLS: boolean;
  user: string | null;
  password: string | null;
  from: string;
  to: string[];
}

export interface WebhookSettings {
  url: string;
  /** HMAC-SHA256 key for the X-B365-Signature header; null sends no signature. */
  secret: string | null;
}

export interface ServerConfig {
  repo: string | null;
  listen: string | null;
  logFile: string | null;
  /** Zone of the default policy and of the server's own schedules. */
  timezone: string;
  monitoring: {
    /** How often the server looks for incidents and due jobs. */
    checkEverySeconds: number;
    /** An agent silent this long is an incident. */
    heartbeatTimeoutSeconds: number;
    /** Free space of the repository below this is an incident. */
    minFreeBytes: number;
  };
  agents: {
    heartbeatSeconds: number;
    retryInitialSeconds: number;
    retryMaxSeconds: number;
  };
  retention: {
    /** When prune runs by itself; null: only on demand. */
    pruneSchedule: string | null;
    gcSchedule: string | null;
    /** Garbage collection spares objects touched this recently. */
    gcGraceSeconds: number;
  };
  notifications: {
    /** An open incident is announced again this often until it is resolved. */
    repeatSeconds: number;
    email: SmtpSettings | null;
    /** Daily summary e-mail; null: none. */
    summarySchedule: string | null;
    webhooks: WebhookSettings[];
  };
  metrics: {
    /** Serve /metrics without a token. */
    public: boolean;
  };
  http: HttpSettings;
  tls: TlsSettings;
}

/** The operator's certificate instead of the self-signed one, and extra names for that one. */
export interface TlsSettings {
  cert: string | null;
  key: string | null;
  /** Names and addresses the self-signed certificate is made for, besides the host's own. */
  names: string[];
}

/** Limits that keep one slow or hostile client from holding what others need. */
export interface HttpSettings {
  /** A request whose headers take longer than this is dropped. */
  headersTimeoutSeconds: number;
  /** A request body that makes no progress for this long is refused with 408. */
  bodyIdleTimeoutSeconds: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutSeconds: number;
  /** Object uploads read and checked at once, over all machines. */
  uploadSlots: number;
  /** The most of those one machine (or one admin token) may hold. */
  uploadSlotsPerMachine: number;
  /** Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For is believed. */
  trustProxy: string[];
}

// Read by src/core/duration.ts, which names the setting when a value does not parse.
const duration = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', minLength: 1, maxLength: 40 },
  ],
};
const size = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', pattern: '^\\d+(\\.\\d+)?\\s*([KMGT]i?B?|B)?$' },
  ],
};
const cron = { anyOf: [{ type: 'string', minLength: 1, maxLength: 200 }, { type: 'null' }] };
const secretOrFile = (name: string) => ({ [name]: { type: 'string' }, [`${name}File`]: { type: 'string' } });

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    repo: { type: 'string' },
    listen: { type: 'string' },
    logFile: { type: 'string' },
    timezone: { type: 'string' },
    monitoring: {
      type: 'object',
      additionalProperties: false,
      properties: { checkEvery: duration, heartbeatTimeout: duration, minFreeSpace: size },
    },
    agents: {
      type: 'object',
      additionalProperties: false,
      properties: { heartbeatEvery: duration, retryInitial: duration, retryMax: duration },
    },
    retention: {
      type: 'object',
      additionalProperties: false,
      properties: { pruneSchedule: cron, gcSchedule: cron, gcGrace: duration },
    },
    notifications: {
      type: 'object',
      additionalProperties: false,
      properties: {
        repeatEvery: duration,
        summarySchedule: cron,
        email: {
          type: 'object',
          additionalProperties: false,
          required: ['host', 'from', 'to'],
          properties: {
            host: { type: 'string', minLength: 1 },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            secure: { type: 'boolean' },
            requireTLS: { type: 'boolean' },
            user: { type: 'string' },
            ...secretOrFile('password'),
            from: { type: 'string', minLength: 3 },
            to: { type: 'array', minItems: 1, items: { type: 'string', minLength: 3 } },
          },
        },
        webhooks: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['url'],
            properties: { url: { type: 'string', pattern: '^https?://' }, ...secretOrFile('secret') },
          },
        },
      },
    },
    metrics: { type: 'object', additionalProperties: false, properties: { public: { type: 'boolean' } } },
    http: {
      type: 'object',
      additionalProperties: false,
      properties: {
        headersTimeout: duration,
        bodyIdleTimeout: duration,
        keepAliveTimeout: duration,
        uploadSlots: { type: 'integer', minimum: 1, maximum: 1024 },
        uploadSlotsPerMachine: { type: 'integer', minimum: 1, maximum: 1024 },
        trustProxy: { type: 'array', items: { type: 'string', minLength: 2, maxLength: 64 } },
      },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cert: { type: 'string', minLength: 1 },
        key: { type: 'string', minLength: 1 },
        names: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 253 } },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true });
const validate = ajv.compile(configSchema);

export function parseSize(value: number | string): number {
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?$/.exec(value.trim())!;
  const power = ' KMGT'.indexOf(match[2] || ' ');
  const base = match[3] || !match[2] ? 1024 : 1000;
  return Math.round(Number(match[1]) * base ** power);
}

export function defaultConfig(): ServerConfig {
  return {
    repo: null,
    listen: null,
    logFile: null,
    timezone: localTimeZone(),
    monitoring: { checkEverySeconds: 30, heartbeatTimeoutSeconds: 15 * 60, minFreeBytes: 10 * 1024 ** 3 },
    agents: { heartbeatSeconds: 5 * 60, retryInitialSeconds: 60, retryMaxSeconds: 30 * 60 },
    retention: { pruneSchedule: '30 3 * * *', gcSchedule: '0 5 * * 0', gcGraceSeconds: 24 * 3600 },
    notifications: { repeatSeconds: 4 * 3600, email: null, summarySchedule: null, webhooks: [] },
    metrics: { public: false },
    http: {
      headersTimeoutSeconds: 30,
      bodyIdleTimeoutSeconds: 30,
      keepAliveTimeoutSeconds: 65,
      uploadSlots: 8,
      uploadSlotsPerMachine: 4,
      trustProxy: [],
    },
    tls: { cert: null, key: null, names: [] },
  };
}

type Raw = Record<string, Record<string, unknown> | undefined> & {
  timezone?: string;
  repo?: string;
  listen?: string;
  logFile?: string;
};

function secret(object: Record<string, unknown>, name: string, base: string, what: string): string | null {
  if (typeof object[name] === 'string') return object[name] as string;
  const file = object[`${name}File`];
  if (typeof file !== 'string') return null;
  try {
    return fs.readFileSync(path.resolve(base, file), 'utf8').trim();
  } catch (error) {
    throw new UsageError(`${what}: cannot read ${name}File ${file}: ${(error as Error).message}`);
  }
}

/** Check and complete a configuration; relative file names are read from `base`. */
export function parseConfig(value: unknown, what = 'server configuration', base = process.cwd()): ServerConfig {
  if (!validate(value)) {
    const first = validate.errors?.[0];
    const extra =
      first?.keyword === 'additionalProperties'
        ? ` (${(first.params as { additionalProperty: string }).additionalProperty})`
        : '';
    throw new FormatError(
      `invalid ${what}: ${first ? `${first.instancePath || '/'} ${first.message}${extra}` : 'rejected'}`,
    );
  }
  const raw = value as Raw;
  const config = defaultConfig();
  const seconds = (section: 'monitoring' | 'agents' | 'retention' | 'notifications', key: string, fallback: number) => {
    const value = raw[section]?.[key];
    return value === undefined
      ? fallback
      : parseDurationSeconds(value as number | string, `${what}: /${section}/${key}`);
  };
  if (raw.repo) config.repo = path.resolve(base, raw.repo);
  if (raw.listen) config.listen = raw.listen;
  if (raw.logFile) config.logFile = path.resolve(base, raw.logFile);
  if (raw.timezone) config.timezone = raw.timezone;
  const { monitoring, retention, notifications, metrics, http } = raw;
  config.monitoring.checkEverySeconds = Math.max(
    1,
    seconds('monitoring', 'checkEvery', config.monitoring.checkEverySeconds),
  );
  config.monitoring.heartbeatTimeoutSeconds = seconds(
    'monitoring',
    'heartbeatTimeout',
    config.monitoring.heartbeatTimeoutSeconds,
  );
  if (monitoring?.minFreeSpace !== undefined)
    config.monitoring.minFreeBytes = parseSize(monitoring.minFreeSpace as number | string);
  config.agents.heartbeatSeconds = Math.max(1, seconds('agents', 'heartbeatEvery', config.agents.heartbeatSeconds));
  config.agents.retryInitialSeconds = Math.max(1, seconds('agents', 'retryInitial', config.agents.retryInitialSeconds));
  config.agents.retryMaxSeconds = Math.max(
    config.agents.retryInitialSeconds,
    seconds('agents', 'retryMax', config.agents.retryMaxSeconds),
  );
  if (retention && 'pruneSchedule' in retention)
    config.retention.pruneSchedule = retention.pruneSchedule as string | null;
  if (retention && 'gcSchedule' in retention) config.retention.gcSchedule = retention.gcSchedule as string | null;
  config.retention.gcGraceSeconds = seconds('retention', 'gcGrace', config.retention.gcGraceSeconds);
  config.notifications.repeatSeconds = Math.max(
    1,
    seconds('notifications', 'repeatEvery', config.notifications.repeatSeconds),
  );
  if (notifications && 'summarySchedule' in notifications)
    config.notifications.summarySchedule = notifications.summarySchedule as string | null;
  const email = notifications?.email as Record<string, unknown> | undefined;
  if (email) {
    const secure = email.secure === true;
    config.notifications.email = {
      host: email.host as string,
      port: (email.port as number | undefined) ?? (secure ? 465 : 587),
      secure,
      requireTLS: email.requireTLS === true,
      user: (email.user as string | undefined) ?? null,
      password: secret(email, 'password', base, what),
      from: email.from as string,
      to: email.to as string[],
    };
  }
  const hooks = (notifications?.webhooks as Record<string, unknown>[] | undefined) ?? [];
  config.notifications.webhooks = hooks.map((hook) => ({
    url: hook.url as string,
    secret: secret(hook, 'secret', base, what),
  }));
  if (metrics?.public !== undefined) config.metrics.public = metrics.public as boolean;
  config.http = parseHttpSettings(http, config.http, what);
  config.tls = parseTlsSettings(raw.tls, base, what);
  // Schedules and the zone are checked here, so a typo stops the server at start.
  for (const schedule of [
    config.retention.pruneSchedule,
    config.retention.gcSchedule,
    config.notifications.summarySchedule,
  ]) {
    if (schedule !== null) new Schedule(schedule, config.timezone);
  }
  return config;
}

function parseTlsSettings(raw: Record<string, unknown> | undefined, base: string, what: string): TlsSettings {
  const cert = typeof raw?.cert === 'string' ? path.resolve(base, raw.cert) : null;
  const key = typeof raw?.key === 'string' ? path.resolve(base, raw.key) : null;
  if ((cert === null) !== (key === null))
    throw new FormatError(`invalid ${what}: /tls needs both cert and key, or neither`);
  return { cert, key, names: (raw?.names as string[] | undefined) ?? [] };
}

function parseHttpSettings(
  raw: Record<string, unknown> | undefined,
  defaults: HttpSettings,
  what: string,
): HttpSettings {
  const seconds = (key: string, fallback: number) =>
    raw?.[key] === undefined ? fallback : parseDurationSeconds(raw[key] as number | string, `${what}: /http/${key}`);
  const settings: HttpSettings = {
    headersTimeoutSeconds: Math.max(1, seconds('headersTimeout', defaults.headersTimeoutSeconds)),
    bodyIdleTimeoutSeconds: Math.max(1, seconds('bodyIdleTimeout', defaults.bodyIdleTimeoutSeconds)),
    keepAliveTimeoutSeconds: Math.max(1, seconds('keepAliveTimeout', defaults.keepAliveTimeoutSeconds)),
    uploadSlots: (raw?.uploadSlots as number | undefined) ?? defaults.uploadSlots,
    uploadSlotsPerMachine: 0,
    trustProxy: (raw?.trustProxy as string[] | undefined) ?? defaults.trustProxy,
  };
  settings.uploadSlotsPerMachine =
    (raw?.uploadSlotsPerMachine as number | undefined) ?? Math.max(1, Math.floor(settings.uploadSlots / 2));
  if (settings.uploadSlotsPerMachine > settings.uploadSlots) {
    throw new FormatError(
      `invalid ${what}: /http/uploadSlotsPerMachine (${settings.uploadSlotsPerMachine}) is more than /http/uploadSlots (${settings.uploadSlots})`,
    );
  }
  // Checked here, so a typo in a proxy address stops the server at start.
  new TrustedProxies(settings.trustProxy);
  return settings;
}

export function loadConfig(file: string | null): ServerConfig {
  if (!file) return defaultConfig();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the server configuration ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FormatError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  return parseConfig(value, file, path.dirname(path.resolve(file)));
}
