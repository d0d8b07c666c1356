// Operations about who may do what: health and this document (public), tokens, restore
// codes and their exchange, the report-signing keys, and the audit trail.
import { MAX_CODE_TTL_MS } from '../restore-codes.js';
import { MAX_TOKEN_TTL_SECONDS } from '../request-fields.js';
import { listOf, machineName, nullableString, numericId, object, ref, shape, time, ttlSeconds } from './common.js';
import type { Operation } from './operation.js';

const tokenId = { id: numericId };

export const accessOperations: Operation[] = [
  {
    operationId: 'health',
    method: 'get',
    path: '/health',
    summary: 'Liveness and version',
    roles: [],
    public: true,
    responses: {
      200: { description: 'ok', json: shape({ ok: { type: 'boolean' }, version: { type: 'string' }, time }) },
    },
  },
  {
    operationId: 'openApiDocument',
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    roles: [],
    public: true,
    responses: { 200: { description: 'OpenAPI document', json: { type: 'object' } } },
  },
  {
    operationId: 'createToken',
    method: 'post',
    path: '/tokens',
    summary: 'Create a token; the secret is returned once',
    roles: ['admin'],
    body: {
      json: object(
        {
          role: { enum: ['admin', 'machine', 'auditor'] },
          machine: { anyOf: [machineName, { type: 'null' }] },
          label: { anyOf: [{ type: 'string', maxLength: 200 }, { type: 'null' }] },
          ttlSeconds: ttlSeconds(MAX_TOKEN_TTL_SECONDS),
        },
        ['role'],
      ),
    },
    responses: {
      201: {
        description: 'the token, with its secret (shown this once)',
        json: { allOf: [ref('Token'), shape({ token: { type: 'string' } })] },
      },
    },
  },
  {
    operationId: 'listTokens',
    method: 'get',
    path: '/tokens',
    summary: 'List tokens (never their secrets)',
    roles: ['admin'],
    responses: { 200: { description: 'tokens', json: listOf('tokens', 'Token') } },
  },
  {
    operationId: 'revokeToken',
    method: 'delete',
    path: '/tokens/{id}',
    summary: 'Revoke a token',
    roles: ['admin'],
    pathParameters: tokenId,
    responses: { 200: { description: 'revoked', json: shape({ revoked: ref('Token') }) } },
  },
  {
    operationId: 'listKeys',
    method: 'get',
    path: '/keys',
    summary: "The server's Ed25519 public key(s) that sign verification reports",
    roles: [],
    public: true,
    responses: {
      200: {
        description: 'keys',
        json: shape({
          keys: {
            type: 'array',
            items: shape({
              keyId: { type: 'string' },
              algorithm: { const: 'ed25519' },
              publicKey: { type: 'string', description: 'PEM' },
            }),
          },
        }),
      },
    },
  },
  {
    operationId: 'listAuditEvents',
    method: 'get',
    path: '/audit',
    summary: 'Audit trail',
    roles: ['admin', 'auditor'],
    query: object({
      kind: { type: 'string', maxLength: 100, description: 'only events of this kind (restore-code-used, ...)' },
    }),
    responses: {
      200: {
        description: 'events',
        json: shape({
          events: {
            type: 'array',
            items: shape({ kind: { type: 'string' }, time, machine: nullableString, detail: nullableString }, [
              'kind',
              'time',
            ]),
          },
        }),
      },
    },
  },
  {
    operationId: 'createRestoreCode',
    method: 'post',
    path: '/restore-codes',
    summary: 'Create a restore code for a technician; the code is returned once',
    roles: ['admin'],
    body: {
      json: object(
        {
          machine: machineName,
          ttlSeconds: ttlSeconds(MAX_CODE_TTL_MS / 1000),
          capture: { type: 'boolean', description: 'also lets the technician image the machine' },
        },
        ['machine'],
      ),
    },
    responses: {
      201: {
        description: 'the code (shown this once) and its record',
        json: { allOf: [ref('RestoreCode'), shape({ code: { type: 'string' } })] },
      },
    },
  },
  {
    operationId: 'listRestoreCodes',
    method: 'get',
    path: '/restore-codes',
    summary: 'List restore codes (never the codes themselves)',
    roles: ['admin'],
    responses: { 200: { description: 'codes', json: listOf('codes', 'RestoreCode') } },
  },
  {
    operationId: 'revokeRestoreCode',
    method: 'delete',
    path: '/restore-codes/{id}',
    summary: 'Revoke a restore code and every token it was exchanged for',
    roles: ['admin'],
    pathParameters: tokenId,
    responses: { 200: { description: 'revoked', json: shape({ revoked: ref('RestoreCode') }) } },
  },
  {
    operationId: 'exchangeRestoreCode',
    method: 'post',
    path: '/restore-codes/exchange',
    summary: 'Exchange a restore code for a token limited to one machine until the code expires',
    roles: [],
    public: true,
    body: {
      json: object({ code: { type: 'string', minLength: 1, maxLength: 200, 'x-expect': 'the restore code' } }, [
        'code',
      ]),
    },
    responses: {
      200: {
        description: 'a token for the machine',
        json: shape({ token: { type: 'string' }, machine: machineName, role: { type: 'string' }, expiresAt: time }),
      },
      400: { description: 'no code in the body', json: ref('Error') },
      401: { description: 'code is invalid_code, code_expired or code_revoked', json: ref('Error') },
      429: { description: 'too many wrong codes', json: ref('Error') },
    },
  },
];
