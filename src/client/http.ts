// HTTP to the repository: keep-alive connections, bounded concurrency, and retries
// with exponential backoff for network errors and 5xx answers on idempotent calls, so
// a server restart in the middle of an upload costs a pause, not the run.
import http from 'node:http';
import https from 'node:https';
import { abortableSleep, backoffDelay, type BackoffPolicy } from '../core/backoff.js';
import {
  AuthError,
  ConflictError,
  ForbiddenError,
  FormatError,
  InterruptedError,
  MissingObjectsError,
  NotFoundError,
  PayloadTooLargeError,
  RepositoryFullError,
  UnavailableError,
  UsageError,
  UserError,
} from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';
import { VERSION } from '../core/version.js';
import { refuseClearTextOffLoopback } from './plain-http.js';
import { normalizeFingerprint, PinnedAgent, type PresentedCertificate } from './tls-pin.js';

export interface HttpClientOptions {
  server: string;
  token: string;
  /** Parallel connections to the server. */
  connections?: number;
  /** Keep retrying a failing idempotent call for this long before giving up. */
  retryForMs?: number;
  /** Give up on one attempt when the connection, the headers or the body stall this long. */
  answerTimeoutMs?: number;
  log?: Logger;
  /** Aborts every request in flight and every retry wait (SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /**
   * SHA-256 fingerprint of the server's certificate to trust besides the CAs (any form
   * normalizeFingerprint accepts). See src/client/tls-pin.ts.
   */
  fingerprint?: string;
}

export interface RequestOptions {
  json?: unknown;
  body?: Buffer | Buffer[];
  /** Total length when `body` is a list of parts. */
  bodyLength?: number;
  query?: Record<string, string | string[] | undefined>;
  /** Safe to repeat; all calls are, except the few that create a new secret. */
  idempotent?: boolean;
  binary?: boolean;
}

// 408: the server dropped a body that stalled (http.bodyIdleTimeout); sending it again is safe.
const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

const DEFAULT_ANSWER_TIMEOUT_MS = 5 * 60_000;
/** Retrying for less than this is not worth a warning: the user barely notices the wait. */
const NOTICEABLE_RETRY_MS = 10_000;
/** Jittered, so that many clients cut off by one server restart do not all come back at once. */
const RETRY_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 10_000, jitter: 0.25 };

interface Exchange {
  method: string;
  headers: Record<string, string>;
  body: Buffer | Buffer[] | string | undefined;
  agent: http.Agent;
  signal: AbortSignal | undefined;
  timeoutMs: number;
}

/** One HTTP exchange on a keep-alive agent: Node's own http, which costs far less memory than a client library. */
function exchange(
  url: URL,
  { method, headers, body, agent, signal, timeoutMs }: Exchange,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const transport = url.protocol === 'https:' ? https : http;
    const request = transport.request(url, { method, headers, agent, timeout: timeoutMs, signal }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, body: parts.length === 1 ? parts[0]! : Buffer.concat(parts) }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    request.on('timeout', () =>
      request.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })),
    );
    if (Array.isArray(body)) {
      for (const part of body) request.write(part);
      request.end();
    } else request.end(body);
  });
}

/** What a network failure means to the person at the terminal. */
function describeNetworkFailure(error: unknown, url: URL): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'ECONNREFUSED')
    return `connection refused (is the server running and listening on port ${url.port || (url.protocol === 'https:' ? 443 : 80)}?)`;
  if (code === 'ENOTFOUND') return `the host name ${url.hostname} does not resolve`;
  if (code === 'EAI_AGAIN') return `the host name ${url.hostname} could not be looked up (DNS did not answer)`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `no route to ${url.hostname}`;
  return (error as Error).message;
}

function networkCode(error: unknown): string | null {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}

export function errorFromResponse(
  status: number,
  body: { code?: string; message?: string; [key: string]: unknown } | null,
  what: string,
  server = 'the server',
): UserError {
  const message = `server refused ${what}: ${body?.message ?? `HTTP ${status}`}`;
  const { code: _code, message: _message, ...details } = body ?? {};
  const options = { details: { status, code: body?.code, ...details } };
  // Not an outage: no retry helps until space is freed, so it is never retried.
  if (status === 507 || body?.code === 'repository_full')
    return new RepositoryFullError(
      `the repository on ${server} is full: ${body?.message ?? `HTTP ${status}`}`,
      options,
    );
  if (status === 401) return new AuthError(message, options);
  if (status === 403) return new ForbiddenError(message, options);
  if (status === 404) return new NotFoundError(message, options);
  if (status === 409)
    return body?.code === 'missing_objects'
      ? new MissingObjectsError(message, options)
      : new ConflictError(message, options);
  if (status === 413) return new PayloadTooLargeError(message, options);
  if (status === 429 || status >= 500) return new UnavailableError(message, options);
  // A value the server refuses is the same mistake as one refused here: a usage error.
  // Only bytes that fail their own check are bad data.
  if (status === 400 && body?.code !== 'digest_mismatch') return new UsageError(message, options);
  return new FormatError(message, options);
}

export class HttpClient {
  readonly server: string;
  private readonly agent: http.Agent;
  private readonly retryForMs: number;
  private readonly answerTimeoutMs: number;
  private readonly log: Logger;

  constructor(private readonly options: HttpClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    if (!/^https?:\/\//.test(this.server))
      throw new FormatError(`server URL must start with http:// or https://, got ${JSON.stringify(options.server)}`);
    const agentOptions = { keepAlive: true, keepAliveMsecs: 30_000, maxSockets: options.connections ?? 8 };
    if (this.server.startsWith('https:'))
      this.agent = new PinnedAgent(
        options.fingerprint ? normalizeFingerprint(options.fingerprint) : null,
        agentOptions,
      );
    else {
      refuseClearTextOffLoopback(this.server);
      this.agent = new http.Agent(agentOptions);
    }
    this.retryForMs = options.retryForMs ?? Number(process.env.B365_RETRY_FOR_MS ?? 5 * 60_000);
    this.answerTimeoutMs = options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    this.log = options.log ?? silentLogger;
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /** The certificate of the server this client last accepted (null over plain HTTP or before the first call). */
  get serverCertificate(): PresentedCertificate | null {
    return this.agent instanceof PinnedAgent ? this.agent.accepted : null;
  }

  async call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: RequestOptions = {}): Promise<T> {
    const result = await this.send(method, path, options);
    return result as T;
  }

  async bytes(path: string, options: RequestOptions = {}): Promise<Buffer> {
    return (await this.send('GET', path, { ...options, binary: true })) as Buffer;
  }

  private async send(method: string, path: string, options: RequestOptions): Promise<unknown> {
    const url = new URL(`${this.server}/api/v1${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined) continue;
      for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
    }
    const headers: Record<string, string> = { 'user-agent': `b365/${VERSION}` };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    let body: Buffer | Buffer[] | string | undefined;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
      headers['content-length'] = String(Buffer.byteLength(body));
    } else if (options.body) {
      headers['content-type'] = 'application/octet-stream';
      body = options.body;
      headers['content-length'] = String(
        Array.isArray(body) ? (options.bodyLength ?? body.reduce((sum, part) => sum + part.length, 0)) : body.length,
      );
    }
    const idempotent = options.idempotent ?? true;
    const what = `${method} ${path}`;
    const started = Date.now();
    const signal = this.options.signal;
    const interrupted = (cause?: unknown) =>
      new InterruptedError(
        `${what} to ${this.server} stopped: ${signal?.reason instanceof Error ? signal.reason.message : 'interrupted'}`,
        { cause },
      );
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw interrupted();
      let failure: UserError;
      try {
        const response = await exchange(url, {
          method,
          headers,
          body,
          agent: this.agent,
          signal,
          timeoutMs: this.answerTimeoutMs,
        });
        if (response.status < 300) {
          if (options.binary) return response.body;
          const text = response.body.toString('utf8');
          return text ? JSON.parse(text) : null;
        }
        const text = response.body.toString('utf8');
        let parsed: { code?: string; message?: string } | null = null;
        try {
          parsed = text ? (JSON.parse(text) as { code?: string; message?: string }) : null;
        } catch {
          parsed = { message: text.slice(0, 200) };
        }
        failure = errorFromResponse(response.status, parsed, what, this.server);
        if (!RETRYABLE_STATUS.has(response.status) || !idempotent) throw failure;
      } catch (error) {
        if (error instanceof UserError) throw error;
        if (signal?.aborted) throw interrupted(error);
        const code = networkCode(error);
        failure = new UnavailableError(
          `cannot reach the server at ${this.server} (${what}): ${describeNetworkFailure(error, url)}`,
          { cause: error, details: code ? { networkCode: code } : undefined },
        );
        if (!code || !idempotent) throw failure;
      }
      const elapsed = Date.now() - started;
      if (elapsed >= this.retryForMs) throw failure;
      const delay = backoffDelay(RETRY_BACKOFF, attempt + 1);
      this.log[this.retryForMs >= NOTICEABLE_RETRY_MS ? 'warn' : 'debug'](
        { attempt: attempt + 1, delayMs: Math.round(delay), error: failure.message },
        'retrying',
      );
      if (!(await abortableSleep(Math.min(delay, this.retryForMs - elapsed + 10), signal)))
        throw interrupted(signal?.reason);
    }
  }
}
