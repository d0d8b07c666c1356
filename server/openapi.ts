// The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json. It is built
// from the operation records in server/api-schemas/, the same ones whose schemas the
// server checks requests with; tests compare them with the routes Express serves.
import { components } from './api-schemas/common.js';
import { operations } from './api-schemas/index.js';
import type { Operation, ResponseSpec, Schema } from './api-schemas/operation.js';
import { VERSION } from '../src/core/version.js';

export { operations };
export type { Operation };

const COMMON_REFUSALS: Record<string, string> = {
  400: 'bad request: the message names the field',
  401: 'no or bad token',
  403: 'not allowed for this role',
  404: 'not found',
};
const PUBLIC_REFUSALS: Record<string, string> = { 400: 'bad request: the message names the field' };

/** JSON Schema keywords only: the `x-` wording is for the server's messages. */
function published(schema: Schema): Schema {
  return JSON.parse(
    JSON.stringify(schema, (key, value: unknown) => (key.startsWith('x-') || key === '$id' ? undefined : value)),
  ) as Schema;
}

function parameters(operation: Operation): Schema[] {
  const inPath = Object.entries(operation.pathParameters ?? {}).map(([name, schema]) => ({
    name,
    in: 'path',
    required: true,
    schema: published(schema),
    ...(schema.description ? { description: schema.description } : {}),
  }));
  const query = operation.query as { properties?: Record<string, Schema>; required?: string[] } | undefined;
  const inQuery = Object.entries(query?.properties ?? {}).map(([name, schema]) => ({
    name,
    in: 'query',
    required: query?.required?.includes(name) ?? false,
    schema: published(schema),
    ...(schema.type === 'array' ? { style: 'form', explode: true } : {}),
    ...(schema.description ? { description: schema.description } : {}),
  }));
  return [...inPath, ...inQuery];
}

function requestBody(operation: Operation): Schema | undefined {
  if (!operation.body) return undefined;
  if ('media' in operation.body)
    return { required: true, content: { [operation.body.media]: { schema: { type: 'string', format: 'binary' } } } };
  return {
    required: operation.body.required ?? true,
    content: { 'application/json': { schema: published(operation.body.json) } },
  };
}

function response(spec: ResponseSpec): Schema {
  const content: Record<string, Schema> = {};
  if (spec.json) content['application/json'] = { schema: published(spec.json) };
  for (const media of spec.media ?? [])
    content[media] = { schema: { type: 'string', ...(media === 'text/plain' ? {} : { format: 'binary' }) } };
  return { description: spec.description, ...(Object.keys(content).length ? { content } : {}) };
}

function responses(operation: Operation): Record<string, Schema> {
  const result: Record<string, Schema> = {};
  for (const [status, spec] of Object.entries(operation.responses)) result[status] = response(spec);
  const refusals = operation.public ? PUBLIC_REFUSALS : COMMON_REFUSALS;
  const mayRefuse = !operation.public || operation.body !== undefined || operation.query !== undefined;
  for (const [status, description] of Object.entries(refusals)) {
    if (mayRefuse)
      result[status] ??= {
        description,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
  }
  return result;
}

function pathItem(operation: Operation): Schema {
  const parameterList = parameters(operation);
  const body = requestBody(operation);
  return {
    operationId: operation.operationId,
    summary: operation.summary,
    'x-roles': operation.roles,
    ...(parameterList.length ? { parameters: parameterList } : {}),
    ...(body ? { requestBody: body } : {}),
    ...(operation.public ? { security: [] } : {}),
    responses: responses(operation),
  };
}

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of operations) {
    paths[operation.path] ??= {};
    paths[operation.path]![operation.method] = pathItem(operation);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Backup365 repository API',
      version: VERSION,
      description:
        'Chunks, indexes and manifests of block-level machine images. Errors are JSON with a stable `code`; a refused request body or query parameter is a 400 whose message names the field.',
    },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: Object.fromEntries(Object.entries(components).map(([name, schema]) => [name, published(schema)])),
    },
  };
}
