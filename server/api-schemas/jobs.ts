// Operations that start and report server jobs: verification (with its signed reports),
// retention, garbage collection and the online reindex.
import { VERIFY_LEVELS } from '../../src/format/verification.js';
import { imageId, jobId, listOf, machineName, object, ref, shape } from './common.js';
import type { Operation } from './operation.js';

const job = { id: jobId };
const BUSY = { description: 'another job that must not overlap is running', json: ref('Error') };

export const jobOperations: Operation[] = [
  {
    operationId: 'startVerification',
    method: 'post',
    path: '/verifications',
    summary: 'Start a verification of some images, or of all',
    roles: ['admin', 'auditor'],
    body: {
      json: object({
        images: { type: 'array', maxItems: 100000, items: imageId },
        all: { type: 'boolean' },
        level: { enum: VERIFY_LEVELS },
      }),
    },
    responses: { 202: { description: 'job', json: ref('Verification') } },
  },
  {
    operationId: 'listVerifications',
    method: 'get',
    path: '/verifications',
    summary: 'Verification jobs, newest first',
    roles: ['admin', 'auditor'],
    responses: { 200: { description: 'jobs', json: listOf('verifications', 'Verification') } },
  },
  {
    operationId: 'getVerification',
    method: 'get',
    path: '/verifications/{id}',
    summary: 'One verification job: state, progress, result',
    roles: ['admin', 'auditor'],
    pathParameters: job,
    responses: { 200: { description: 'job', json: ref('Verification') } },
  },
  {
    operationId: 'getVerificationReport',
    method: 'get',
    path: '/verifications/{id}/report',
    summary: 'The signed report of a finished verification',
    roles: ['admin', 'auditor'],
    pathParameters: job,
    responses: {
      200: {
        description: 'signed report: {report, signature: {algorithm, keyId, value}}',
        json: shape({
          report: { type: 'object' },
          signature: shape({ algorithm: { const: 'ed25519' }, keyId: { type: 'string' }, value: { type: 'string' } }),
        }),
      },
    },
  },
  {
    operationId: 'prune',
    method: 'post',
    path: '/prune',
    summary: 'Apply retention now; returns what was kept (and why) and removed',
    roles: ['admin'],
    body: {
      json: object({ machine: { anyOf: [machineName, { type: 'null' }] }, dryRun: { type: 'boolean' } }),
      required: false,
    },
    responses: { 200: { description: 'prune report', json: ref('PruneReport') } },
  },
  {
    operationId: 'listPrunes',
    method: 'get',
    path: '/prune',
    summary: 'Past prune reports, newest first',
    roles: ['admin', 'auditor'],
    responses: { 200: { description: 'reports', json: listOf('prunes', 'PruneReport') } },
  },
  {
    operationId: 'startGc',
    method: 'post',
    path: '/gc',
    summary: 'Start garbage collection',
    roles: ['admin'],
    body: {
      json: object({
        dryRun: { type: 'boolean' },
        graceSeconds: {
          anyOf: [{ type: 'number', minimum: 0 }, { type: 'null' }],
          'x-expect': 'a number of seconds, 0 or more',
        },
      }),
      required: false,
    },
    responses: { 202: { description: 'job', json: ref('GcJob') }, 409: BUSY },
  },
  {
    operationId: 'listGc',
    method: 'get',
    path: '/gc',
    summary: 'Garbage collections, newest first',
    roles: ['admin', 'auditor'],
    responses: { 200: { description: 'jobs', json: listOf('collections', 'GcJob') } },
  },
  {
    operationId: 'getGc',
    method: 'get',
    path: '/gc/{id}',
    summary: 'One garbage collection: state, counts, bytes reclaimed',
    roles: ['admin', 'auditor'],
    pathParameters: job,
    responses: { 200: { description: 'job', json: ref('GcJob') } },
  },
  {
    operationId: 'startReindex',
    method: 'post',
    path: '/reindex',
    summary: 'Reconcile the catalog with the store while the server runs (objects and images added or dropped)',
    roles: ['admin'],
    responses: { 202: { description: 'job', json: ref('ReindexJob') }, 409: BUSY },
  },
  {
    operationId: 'getReindex',
    method: 'get',
    path: '/reindex/{id}',
    summary: 'One online reindex: state and what it changed',
    roles: ['admin', 'auditor'],
    pathParameters: job,
    responses: { 200: { description: 'job', json: ref('ReindexJob') } },
  },
];
