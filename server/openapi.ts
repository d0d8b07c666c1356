// The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json. Operations
// are listed once here; a test calls every one of them to keep this honest.
import { manifestSchema } from '../src/format/manifest.js';
import { VERSION } from '../src/version.js';

export interface Operation {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  summary: string;
  roles: string[];
  body?: 'json' | 'lz4-frame' | 'manifest';
  /** Status codes beyond the common 400/401/403/404. */
  responses: Record<string, string>;
  /** Readable without a token. */
  public?: boolean;
}

const SESSION = '/sessions/{id}';
export const operations: Operation[] = [
  { method: 'get', path: '/health', summary: 'Liveness and version', roles: [], public: true, responses: { 200: 'ok' } },
  { method: 'get', path: '/openapi.json', summary: 'This document', roles: [], public: true, responses: { 200: 'OpenAPI document' } },
  { method: 'post', path: '/sessions', summary: 'Open an upload session with a client-chosen UUID, or resume it', roles: ['admin', 'machine'], body: 'json', responses: { 200: 'session' } },
  { method: 'post', path: `${SESSION}/heartbeat`, summary: "Renew the session's lease", roles: ['admin', 'machine'], responses: { 200: 'session' } },
  { method: 'post', path: `${SESSION}/missing`, summary: 'Which of these digests (at most 10000) must be uploaded', roles: ['admin', 'machine'], body: 'json', responses: { 200: '{missing: [digest]}', 409: 'session not open' } },
  { method: 'put', path: `${SESSION}/chunks/{digest}`, summary: 'Upload a chunk as an LZ4 frame; rejected with 400 digest_mismatch unless it hashes to its name', roles: ['admin', 'machine'], body: 'lz4-frame', responses: { 201: 'stored (for a machine token: new to this machine, whether or not another machine holds it)', 200: 'already present (touched); for a machine token only when its own images or session hold it', 408: 'the body made no progress for http.bodyIdleTimeout', 413: 'too large', 507: 'repository_full: the storage has no room; nothing was stored, retry after space is freed' } },
  { method: 'put', path: `${SESSION}/indexes/{digest}`, summary: 'Upload a fixed index as an LZ4 frame', roles: ['admin', 'machine'], body: 'lz4-frame', responses: { 201: 'stored', 200: 'already present', 408: 'the body made no progress for http.bodyIdleTimeout', 413: 'too large', 507: 'repository_full: the storage has no room; nothing was stored, retry after space is freed' } },
  { method: 'post', path: `${SESSION}/commit`, summary: 'Commit the manifest; the image exists from here on, named with a server timestamp', roles: ['admin', 'machine'], body: 'manifest', responses: { 201: 'committed', 200: 'already committed (idempotent)', 409: 'missing_objects: names the absent digests (absent from the catalog, or from the store though the catalog listed them); send them and commit again', 507: 'repository_full: the storage has no room; nothing was stored, retry after space is freed' } },
  { method: 'delete', path: SESSION, summary: 'Abort the session', roles: ['admin', 'machine'], responses: { 200: 'aborted' } },
  { method: 'get', path: '/machines', summary: 'Machines and their latest image', roles: ['admin', 'auditor', 'machine', 'restore'], responses: { 200: '{machines}' } },
  { method: 'get', path: '/machines/{machine}/base', summary: 'Latest healthy image holding one of the given disks (?disk=KEY, repeatable)', roles: ['admin', 'machine'], responses: { 200: '{image|null}' } },
  { method: 'get', path: '/images', summary: 'List images (?machine=NAME)', roles: ['admin', 'auditor', 'machine', 'restore'], responses: { 200: '{images}' } },
  { method: 'get', path: '/images/{id}', summary: 'One image (id is MACHINE@TIMESTAMP or MACHINE@latest)', roles: ['admin', 'auditor', 'machine', 'restore'], responses: { 200: 'image' } },
  { method: 'get', path: '/images/{id}/manifest', summary: 'The manifest exactly as stored', roles: ['admin', 'auditor', 'machine', 'restore'], responses: { 200: 'manifest' } },
  { method: 'delete', path: '/images/{id}', summary: 'Delete an image (its chunks stay until garbage collection)', roles: ['admin'], responses: { 200: 'deleted' } },
  { method: 'get', path: '/chunks/{digest}', summary: 'A chunk as its stored LZ4 frame', roles: ['admin', 'machine', 'restore'], responses: { 200: 'LZ4 frame' } },
  { method: 'get', path: '/indexes/{digest}', summary: 'A fixed index as its stored LZ4 frame', roles: ['admin', 'auditor', 'machine', 'restore'], responses: { 200: 'LZ4 frame' } },
  { method: 'post', path: '/tokens', summary: 'Create a token {role, machine?, label?, ttlSeconds?}; the secret is returned once', roles: ['admin'], body: 'json', responses: { 201: 'token' } },
  { method: 'get', path: '/tokens', summary: 'List tokens (never their secrets)', roles: ['admin'], responses: { 200: '{tokens}' } },
  { method: 'delete', path: '/tokens/{id}', summary: 'Revoke a token', roles: ['admin'], responses: { 200: 'revoked' } },
  { method: 'get', path: '/keys', summary: "The server's Ed25519 public key(s) that sign verification reports", roles: [], public: true, responses: { 200: '{keys: [{keyId, algorithm, publicKey}]}' } },
  { method: 'post', path: '/verifications', summary: 'Start a verification {images: [id] | all: true, level: structural|content|restore-stream}', roles: ['admin', 'auditor'], body: 'json', responses: { 202: 'job' } },
  { method: 'get', path: '/verifications', summary: 'Verification jobs, newest first', roles: ['admin', 'auditor'], responses: { 200: '{verifications}' } },
  { method: 'get', path: '/verifications/{id}', summary: 'One verification job: state, progress, result', roles: ['admin', 'auditor'], responses: { 200: 'job' } },
  { method: 'get', path: '/verifications/{id}/report', summary: 'The signed report of a finished verification', roles: ['admin', 'auditor'], responses: { 200: 'signed report' } },
  { method: 'get', path: '/images/{id}/volumes/{volume}/files/{path}', summary: 'A path inside a volume (partition number or volume id): a directory lists as JSON, a file comes back as bytes (Range supported), ?archive=tar streams a tar', roles: ['admin', 'machine', 'restore'], responses: { 200: 'listing or bytes', 206: 'partial content', 416: 'bad range' } },
  { method: 'get', path: '/stats', summary: 'Counters of chunks and bytes served to readers', roles: ['admin', 'auditor'], responses: { 200: '{chunksServed, chunkBytesServed}' } },
  { method: 'get', path: '/audit', summary: 'Audit trail (?kind=restore-code-used, ...)', roles: ['admin', 'auditor'], responses: { 200: '{events}' } },
  { method: 'post', path: '/restore-codes', summary: 'Create a restore code {machine, ttlSeconds?} for a technician; the code is returned once', roles: ['admin'], body: 'json', responses: { 201: 'code' } },
  { method: 'get', path: '/restore-codes', summary: 'List restore codes (never the codes themselves)', roles: ['admin'], responses: { 200: '{codes}' } },
  { method: 'delete', path: '/restore-codes/{id}', summary: 'Revoke a restore code and every token it was exchanged for', roles: ['admin'], responses: { 200: 'revoked' } },
  { method: 'post', path: '/restore-codes/exchange', summary: 'Exchange a restore code {code} for a token limited to one machine until the code expires', roles: [], public: true, body: 'json', responses: { 200: '{token, machine, expiresAt}', 401: 'code is invalid_code, code_expired or code_revoked', 429: 'too many wrong codes' } },
  { method: 'get', path: '/policies', summary: 'The default policy and every machine policy, each with what it sets and what it amounts to', roles: ['admin', 'auditor'], responses: { 200: '{policies}' } },
  { method: 'get', path: '/policies/{name}', summary: 'One policy (`default` or a machine name): its own fields and the effective policy', roles: ['admin', 'auditor', 'machine'], responses: { 200: 'policy' } },
  { method: 'put', path: '/policies/{name}', summary: 'Set fields of a policy {schedule, timezone, enabled, disks, live, raw, chunkSize, spreadSeconds, windowSeconds, retention: {keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly}}; null inherits', roles: ['admin'], body: 'json', responses: { 200: 'policy' } },
  { method: 'delete', path: '/policies/{name}', summary: "Remove a machine's own policy (it follows the default), or reset the default", roles: ['admin'], responses: { 200: 'policy' } },
  { method: 'get', path: '/agent/policy', summary: "The calling machine's effective policy and agent settings", roles: ['machine'], responses: { 200: '{machine, policy, agent, serverTime}' } },
  { method: 'post', path: '/agent/heartbeat', summary: 'An agent is alive {hostname, version, state, nextRunAt, currentRun}', roles: ['machine'], body: 'json', responses: { 200: '{agent, policyChangedAt, serverTime}' } },
  { method: 'get', path: '/agents', summary: 'Agents and their last heartbeat', roles: ['admin', 'auditor'], responses: { 200: '{agents}' } },
  { method: 'delete', path: '/agents/{machine}', summary: "Stop watching a machine's agent (no more heartbeat or missed-run incidents)", roles: ['admin'], responses: { 200: 'forgotten' } },
  { method: 'put', path: '/runs/{id}', summary: 'Create or update the report of an agent run (repeatable; a report the agent closed does not change)', roles: ['admin', 'machine'], body: 'json', responses: { 200: 'run' } },
  { method: 'get', path: '/runs', summary: 'Run reports, newest first (?machine=NAME&since=ISO&state=ok|failed|running&limit=N)', roles: ['admin', 'auditor', 'machine'], responses: { 200: '{runs}' } },
  { method: 'get', path: '/runs/{id}', summary: 'One run report', roles: ['admin', 'auditor', 'machine'], responses: { 200: 'run' } },
  { method: 'get', path: '/incidents', summary: 'Incidents (?state=open|resolved|all&machine=NAME)', roles: ['admin', 'auditor'], responses: { 200: '{incidents}' } },
  { method: 'get', path: '/notifications', summary: 'Notifications sent or waiting to be sent, newest first', roles: ['admin', 'auditor'], responses: { 200: '{notifications}' } },
  { method: 'post', path: '/prune', summary: 'Apply retention now {machine?, dryRun?}; returns what was kept (and why) and removed', roles: ['admin'], body: 'json', responses: { 200: 'prune report' } },
  { method: 'get', path: '/prune', summary: 'Past prune reports, newest first', roles: ['admin', 'auditor'], responses: { 200: '{prunes}' } },
  { method: 'post', path: '/gc', summary: 'Start garbage collection {dryRun?, graceSeconds?}', roles: ['admin'], body: 'json', responses: { 202: 'job', 409: 'one is already running' } },
  { method: 'get', path: '/gc', summary: 'Garbage collections, newest first', roles: ['admin', 'auditor'], responses: { 200: '{collections}' } },
  { method: 'get', path: '/gc/{id}', summary: 'One garbage collection: state, counts, bytes reclaimed', roles: ['admin', 'auditor'], responses: { 200: 'job' } },
  { method: 'post', path: '/reindex', summary: 'Reconcile the catalog with the store while the server runs (objects and images added or dropped)', roles: ['admin'], responses: { 202: 'job', 409: 'a reindex or garbage collection is running' } },
  { method: 'get', path: '/reindex/{id}', summary: 'One online reindex: state and what it changed', roles: ['admin', 'auditor'], responses: { 200: 'job' } },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics (text format; also at /metrics); public if the server config says so', roles: ['admin', 'auditor'], responses: { 200: 'text/plain metrics' } },
];

const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  additionalProperties: true,
};

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of operations) {
    const parameters = [...operation.path.matchAll(/\{(\w+)\}/g)].map((match) => ({ name: match[1], in: 'path', required: true, schema: { type: 'string' } }));
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(operation.responses)) responses[status] = { description };
    for (const [status, description] of Object.entries({ 400: 'bad request', 401: 'no or bad token', 403: 'not allowed for this role', 404: 'not found' })) {
      if (!operation.public) responses[status] ??= { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    const requestBody =
      operation.body === 'lz4-frame'
        ? { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }
        : operation.body === 'manifest'
          ? { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Manifest' } } } }
          : operation.body === 'json'
            ? { required: true, content: { 'application/json': { schema: { type: 'object' } } } }
            : undefined;
    paths[operation.path] ??= {};
    paths[operation.path]![operation.method] = {
      summary: operation.summary,
      'x-roles': operation.roles,
      ...(parameters.length ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      ...(operation.public ? { security: [] } : {}),
      responses,
    };
  }
  const { $id: _id, ...manifest } = manifestSchema;
  return {
    openapi: '3.1.0',
    info: { title: 'Backup365 repository API', version: VERSION, description: 'Chunks, indexes and manifests of block-level machine images. Errors are JSON with a stable `code`.' },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorSchema, Manifest: manifest },
    },
  };
}
