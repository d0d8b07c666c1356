// The shape of one API operation: everything the OpenAPI document says about it and
// everything the server checks before its handler runs (roles, query, JSON body).
// Route modules and the document both read these records, so they cannot drift apart.
import type { Role } from '../catalog/catalog.js';

/**
 * A JSON Schema (2020-12, as OpenAPI 3.1 uses). Three annotations word a rule for the
 * 400 message and are left out of the published document: `x-expect` (the field must be
 * ...), `x-invalid` (a template with {value}), `x-type` (when the JSON type is wrong).
 */
export type Schema = { [keyword: string]: unknown };

export type MediaType = 'application/octet-stream' | 'application/x-tar' | 'text/plain';

export interface ResponseSpec {
  description: string;
  /** JSON body schema; absent for an empty or non-JSON body. */
  json?: Schema;
  /** Non-JSON bodies (LZ4 frames, files, tar, metrics text), beside or instead of JSON. */
  media?: MediaType[];
}

export interface Operation {
  operationId: string;
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI path template under /api/v1 (`/images/{id}`). */
  path: string;
  summary: string;
  /** Roles allowed past authorization; the handler may narrow further (a machine's own data). */
  roles: Role[];
  /** Readable without a token. */
  public?: boolean;
  /** One schema per path parameter, by name. */
  pathParameters?: Record<string, Schema>;
  /** An object schema whose properties are the query parameters. */
  query?: Schema;
  /** JSON body schema, or a binary upload. */
  body?: { json: Schema; required?: boolean } | { media: 'application/octet-stream' };
  /**
   * The body is parsed by a format module (manifest, run report, policy) with this very
   * schema and its own messages; checking it twice would only change the wording.
   */
  bodyParsedByHandler?: boolean;
  responses: Record<string, ResponseSpec>;
}
