// Operations of unattended backups: policies, agents and their heartbeats, run reports,
// incidents and notifications, and the Prometheus metrics.
import { overridesSchema } from '../../src/format/policy.js';
import { runReportSchema } from '../../src/format/run-report.js';
import { count, listOf, machineName, nullableString, nullableTime, object, ref, shape, time, uuid } from './common.js';
import type { Operation, Schema } from './operation.js';

/** A policy change: any field of a policy; null goes back to inheriting it. */
function nullableFields(schema: { properties: Record<string, Schema> }): Schema {
  const orNull = (field: Schema): Schema => ({ anyOf: [field, { type: 'null' }] });
  const properties = Object.fromEntries(
    Object.entries(schema.properties).map(([name, field]) => {
      const inner = field as { properties?: Record<string, Schema> };
      return [
        name,
        orNull(
          inner.properties
            ? {
                ...field,
                properties: Object.fromEntries(
                  Object.entries(inner.properties).map(([key, value]) => [key, orNull(value)]),
                ),
              }
            : field,
        ),
      ];
    }),
  );
  return { ...schema, properties };
}

const policyName = {
  name: { type: 'string', minLength: 1, maxLength: 64, description: '`default` or a machine name' },
};
const agentView = { agent: ref('Agent'), policyChangedAt: nullableTime, serverTime: time };

export const scheduleOperations: Operation[] = [
  {
    operationId: 'listPolicies',
    method: 'get',
    path: '/policies',
    summary: 'The default policy and every machine policy, each with what it sets and what it amounts to',
    roles: ['admin', 'auditor'],
    responses: { 200: { description: 'policies', json: listOf('policies', 'Policy') } },
  },
  {
    operationId: 'getPolicy',
    method: 'get',
    path: '/policies/{name}',
    summary: 'One policy (`default` or a machine name): its own fields and the effective policy',
    roles: ['admin', 'auditor', 'machine'],
    pathParameters: policyName,
    responses: { 200: { description: 'policy', json: ref('Policy') } },
  },
  {
    operationId: 'setPolicy',
    method: 'put',
    path: '/policies/{name}',
    summary: 'Set fields of a policy; null inherits',
    roles: ['admin'],
    pathParameters: policyName,
    body: { json: nullableFields(overridesSchema) },
    bodyParsedByHandler: true,
    responses: { 200: { description: 'policy', json: ref('Policy') } },
  },
  {
    operationId: 'resetPolicy',
    method: 'delete',
    path: '/policies/{name}',
    summary: "Remove a machine's own policy (it follows the default), or reset the default",
    roles: ['admin'],
    pathParameters: policyName,
    responses: { 200: { description: 'policy', json: ref('Policy') } },
  },
  {
    operationId: 'agentPolicy',
    method: 'get',
    path: '/agent/policy',
    summary: "The calling machine's effective policy and agent settings",
    roles: ['machine'],
    responses: {
      200: {
        description: 'policy and settings',
        json: shape({
          machine: machineName,
          policy: { type: 'object' },
          policyChangedAt: nullableTime,
          agent: shape({ heartbeatSeconds: count, retryInitialSeconds: count, retryMaxSeconds: count }),
          serverTime: time,
        }),
      },
    },
  },
  {
    operationId: 'agentHeartbeat',
    method: 'post',
    path: '/agent/heartbeat',
    summary: 'An agent is alive',
    roles: ['machine'],
    body: {
      json: {
        type: 'object',
        description:
          'What the agent says about itself; longer texts are cut to 200 characters, unknown fields are ignored (older and newer agents)',
        properties: {
          hostname: nullableString,
          version: nullableString,
          state: nullableString,
          nextRunAt: nullableString,
          currentRun: nullableString,
        },
      },
    },
    responses: { 200: { description: 'the agent as recorded', json: shape(agentView) } },
  },
  {
    operationId: 'listAgents',
    method: 'get',
    path: '/agents',
    summary: 'Agents and their last heartbeat',
    roles: ['admin', 'auditor'],
    responses: { 200: { description: 'agents', json: listOf('agents', 'Agent') } },
  },
  {
    operationId: 'forgetAgent',
    method: 'delete',
    path: '/agents/{machine}',
    summary: "Stop watching a machine's agent (no more heartbeat or missed-run incidents)",
    roles: ['admin'],
    pathParameters: { machine: machineName },
    responses: { 200: { description: 'forgotten', json: shape({ forgotten: machineName }) } },
  },
  {
    operationId: 'reportRun',
    method: 'put',
    path: '/runs/{id}',
    summary: 'Create or update the report of an agent run (repeatable; a report the agent closed does not change)',
    roles: ['admin', 'machine'],
    pathParameters: { id: uuid },
    body: { json: runReportSchema },
    bodyParsedByHandler: true,
    responses: { 200: { description: 'run', json: ref('Run') } },
  },
  {
    operationId: 'listRuns',
    method: 'get',
    path: '/runs',
    summary: 'Run reports, newest first',
    roles: ['admin', 'auditor', 'machine'],
    query: object({
      machine: machineName,
      since: { type: 'string', minLength: 1, maxLength: 40, description: 'an ISO 8601 time' },
      state: { enum: ['running', 'ok', 'failed'] },
      limit: {
        type: 'integer',
        minimum: 1,
        maximum: 1000000,
        description: 'at most this many (the server returns at most 10000)',
      },
    }),
    responses: { 200: { description: 'runs', json: listOf('runs', 'Run') } },
  },
  {
    operationId: 'getRun',
    method: 'get',
    path: '/runs/{id}',
    summary: 'One run report',
    roles: ['admin', 'auditor', 'machine'],
    pathParameters: { id: uuid },
    responses: { 200: { description: 'run', json: ref('Run') } },
  },
  {
    operationId: 'listIncidents',
    method: 'get',
    path: '/incidents',
    summary: 'Incidents',
    roles: ['admin', 'auditor'],
    query: object({
      state: { enum: ['open', 'resolved', 'all'] },
      machine: { type: 'string', maxLength: 64, description: 'a machine name, or `repository`' },
    }),
    responses: { 200: { description: 'incidents', json: listOf('incidents', 'Incident') } },
  },
  {
    operationId: 'listNotifications',
    method: 'get',
    path: '/notifications',
    summary: 'Notifications sent or waiting to be sent, newest first',
    roles: ['admin', 'auditor'],
    responses: {
      200: {
        description: 'notifications',
        json: shape({ notifications: { type: 'array', items: shape({ createdAt: time, deliveredAt: nullableTime }) } }),
      },
    },
  },
  {
    operationId: 'metrics',
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics (text format; also at /metrics); public if the server config says so',
    roles: ['admin', 'auditor'],
    responses: {
      200: { description: 'metrics in the Prometheus text format (docs/metrics.md lists them)', media: ['text/plain'] },
    },
  },
];
