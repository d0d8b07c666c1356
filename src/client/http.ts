// HTTP to the repository: keep-alive connections, bounded concurrency, and retries
// with exponential backoff for network errors and 5xx answers on idempotent calls, so
// a server restart in the middle of an upload costs a pause, not the run.
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import {
  AuthError,
  ConflictError,
  ForbiddenError,
  FormatError,
  MissingObjectsError,
  NotFoundError,
  PayloadTooLargeError,
  UnavailableError,
  UserError,
} from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { VERSION } from '../version.js';

export interface HttpClientOptions {
  server: string;
  token: string;
  /** Parallel connections to the server. */
  connections?: number;
  /** Keep retrying a failing idempotent call for this long before giving up. */
  retryForMs?: number;
  log?: Logger;
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

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

function networkCode(error: unknown): string | null {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}

export function errorFromResponse(status: number, body: { code?: string; message?: string; [key: string]: unknown } | null, what: string): UserError {
  const message = `server refused ${what}: ${body?.message ?? `HTTP ${status}`}`;
  const { code: _code, message: _message, ...details } = body ?? {};
  const options = { details: { status, code: body?.code, ...details } };
  if (status === 401) return new AuthError(message, options);
  if (status === 403) return new ForbiddenError(message, options);
  if (status === 404) return new NotFoundError(message, options);
  if (status === 409) return body?.code === 'missing_objects' ? new MissingObjectsError(message, options) : new ConflictError(message, options);
  if (status === 413) return new PayloadTooLargeError(message, options);
  if (status === 429 || status >= 500) return new UnavailableError(message, options);
  return new FormatError(message, options);
}

export class HttpClient {
  readonly server: string;
  private readonly agent: Agent;
  private readonly retryForMs: number;
  private readonly log: Logger;

  constructor(private readonly options: HttpClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    if (!/^https?:\/\//.test(this.server)) throw new FormatError(`server URL must start with http:// or https://, got ${JSON.stringify(options.server)}`);
    this.agent = new Agent({ connections: options.connections ?? 8, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000, pipelining: 1 });
    this.retryForMs = options.retryForMs ?? Number(process.env.B365_RETRY_FOR_MS ?? 5 * 60_000);
    this.log = options.log ?? silentLogger;
  }

  async close(): Promise<void> {
    await this.agent.close();
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
    } else if (options.body) {
      headers['content-type'] = 'application/octet-stream';
      body = options.body;
      if (Array.isArray(body)) headers['content-length'] = String(options.bodyLength ?? body.reduce((sum, part) => sum + part.length, 0));
    }
    const idempotent = options.idempotent ?? true;
    const what = `${method} ${path}`;
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      let failure: UserError;
      try {
        // Parts are streamed back to back; a fresh stream for every attempt.
        const payload = Array.isArray(body) ? Readable.from(body, { objectMode: false }) : body;
        const response = await request(url, { method: method as 'GET', headers, body: payload, dispatcher: this.agent });
        if (response.statusCode < 300) {
          if (options.binary) return Buffer.from(await response.body.arrayBuffer());
          const text = await response.body.text();
          return text ? JSON.parse(text) : null;
        }
        const text = await response.body.text();
        let parsed: { code?: string; message?: string } | null = null;
        try {
          parsed = text ? (JSON.parse(text) as { code?: string; message?: string }) : null;
        } catch {
          parsed = { message: text.slice(0, 200) };
        }
        failure = errorFromResponse(response.statusCode, parsed, what);
        if (!RETRYABLE_STATUS.has(response.statusCode) || !idempotent) throw failure;
      } catch (error) {
        if (error instanceof UserError) throw error;
        const code = networkCode(error);
        if (!code || !idempotent) throw new UnavailableError(`cannot reach the server at ${this.server} (${what}): ${(error as Error).message}`, { cause: error });
        failure = new UnavailableError(`cannot reach the server at ${this.server} (${what}): ${code}`, { cause: error });
      }
      const elapsed = Date.now() - started;
      if (elapsed >= this.retryForMs) throw failure;
      const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() * 0.5);
      this.log.warn({ attempt: attempt + 1, delayMs: Math.round(delay), error: failure.message }, 'retrying');
      await sleep(Math.min(delay, this.retryForMs - elapsed + 10));
    }
  }
}
