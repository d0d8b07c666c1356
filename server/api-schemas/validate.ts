// Checks a request against its operation before the handler runs: the caller's role
// (so a role that may not call it learns nothing from a validation message), then the
// query parameters and the JSON body, with the same schemas the document publishes.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { RequestHandler } from 'express';
import { UsageError } from '../../src/core/errors.js';
import { requireRole } from '../auth.js';
import { principalOf } from '../http.js';
import { operation as operationById } from './index.js';
import type { Operation, Schema } from './operation.js';

// Query values arrive as strings (or arrays when repeated): coerced for the check only.
const queryAjv = new Ajv({ allErrors: false, strict: true, coerceTypes: 'array', verbose: true });
const bodyAjv = new Ajv({ allErrors: false, strict: true, verbose: true });
for (const ajv of [queryAjv, bodyAjv]) {
  for (const keyword of ['x-expect', 'x-invalid', 'x-type']) ajv.addKeyword(keyword);
  ajv.addFormat('date-time-ish', (text: string) => !Number.isNaN(Date.parse(text)));
}

interface Checks {
  query: ValidateFunction | null;
  body: ValidateFunction | null;
}

const compiled = new Map<string, Checks>();

function checksOf(operation: Operation): Checks {
  let checks = compiled.get(operation.operationId);
  if (!checks) {
    const body =
      operation.body && 'json' in operation.body && !operation.bodyParsedByHandler ? operation.body.json : null;
    checks = {
      query: operation.query ? queryAjv.compile(operation.query) : null,
      body: body ? bodyAjv.compile(body) : null,
    };
    compiled.set(operation.operationId, checks);
  }
  return checks;
}

/** `body.retention.keepDaily`, `query.limit`, `body.images[2]`. */
function fieldName(where: string, error: ErrorObject): string {
  const segments = error.instancePath
    .split('/')
    .slice(1)
    .map((segment) => (/^\d+$/.test(segment) ? `[${segment}]` : `.${segment.replace(/~1/g, '/').replace(/~0/g, '~')}`));
  const missing =
    error.keyword === 'required' ? `.${(error.params as { missingProperty: string }).missingProperty}` : '';
  const unknown =
    error.keyword === 'additionalProperties'
      ? `.${(error.params as { additionalProperty: string }).additionalProperty}`
      : '';
  return `${where}${segments.join('')}${missing}${unknown}`;
}

const WORDING = ['x-expect', 'x-invalid', 'x-type'] as const;

/** The deepest schema on the error's schema path that words its rule (`x-expect`, `x-invalid`, `x-type`). */
function wording(root: Schema, error: ErrorObject): Schema | null {
  let node: unknown = root;
  let found: Schema | null = null;
  for (const segment of [...error.schemaPath.replace(/^#\//, '').split('/'), '']) {
    if (node === null || typeof node !== 'object') break;
    if (WORDING.some((keyword) => typeof (node as Schema)[keyword] === 'string')) found = node as Schema;
    node = (node as Record<string, unknown>)[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return found;
}

/** A value short enough for a message: a 10,000-item array is not echoed back. */
function shortValue(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (value !== null && typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? 'nothing';
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

function describe(where: string, root: Schema, error: ErrorObject): string {
  const field = fieldName(where, error);
  const got = shortValue(error.data);
  if (error.keyword === 'required') return `${field} is required`;
  if (error.keyword === 'additionalProperties') {
    const known = Object.keys(((error.parentSchema as Schema | undefined)?.properties as Schema | undefined) ?? {});
    return `${field} is not a known field${known.length ? ` (known: ${known.join(', ')})` : ''}`;
  }
  const rule = wording(root, error);
  if (rule?.['x-type'] && error.keyword === 'type')
    return `${field}: ${String(rule['x-type'])}, got ${typeName(error.data)}`;
  if (rule?.['x-invalid']) return `${field}: ${String(rule['x-invalid']).replace('{value}', got)}`;
  if (rule?.['x-expect']) return `${field} must be ${String(rule['x-expect'])}, got ${got}`;
  if (error.keyword === 'enum')
    return `${field} must be one of ${((error.params as { allowedValues: unknown[] }).allowedValues ?? []).join(', ')}, got ${got}`;
  return `${field} ${error.message ?? 'is invalid'}, got ${got}`;
}

function check(validate: ValidateFunction | null, root: Schema | undefined, value: unknown, where: string): void {
  if (!validate || root === undefined) return;
  if (!validate(value)) throw new UsageError(describe(where, root, validate.errors![0]!));
}

/** Middleware for one operation: mount it after the body parser (if any) and before the handler. */
export function accepts(operationId: string): RequestHandler {
  const operation = operationById(operationId);
  // Compiled when the routes are built: a schema ajv refuses stops the server at start.
  const checks = checksOf(operation);
  return (request, response, next) => {
    if (!operation.public) requireRole(principalOf(response), ...operation.roles);
    check(checks.query, operation.query, structuredClone({ ...request.query }), 'query');
    const bodySchema = operation.body && 'json' in operation.body ? operation.body.json : undefined;
    check(checks.body, bodySchema, request.body ?? {}, 'body');
    next();
  };
}
