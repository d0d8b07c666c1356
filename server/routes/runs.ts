// Run reports: agents send them (PUT, repeatable), admins and auditors read them.
import { Router } from 'express';
import { UsageError } from '../../src/core/errors.js';
import type { RunState } from '../../src/format/run-report.js';
import { jsonBody, principalOf } from '../http.js';
import { runView, type Runs } from '../runs.js';
import { accepts } from '../api-schemas/validate.js';

export function runRoutes(runs: Runs): Router {
  const router = Router();
  router.put('/runs/:id', jsonBody, accepts('reportRun'), (request, response) => {
    response.json(runView(runs.accept(principalOf(response), String(request.params.id), request.body)));
  });
  router.get('/runs', accepts('listRuns'), (request, response) => {
    const text = (name: string) =>
      typeof request.query[name] === 'string' ? (request.query[name] as string) : undefined;
    const since = text('since');
    const sinceMs = since === undefined ? undefined : Date.parse(since);
    if (sinceMs !== undefined && Number.isNaN(sinceMs))
      throw new UsageError(`since must be an ISO 8601 time, got ${JSON.stringify(since)}`);
    const state = text('state');
    if (state !== undefined && !['running', 'ok', 'failed'].includes(state))
      throw new UsageError('state must be running, ok or failed');
    const limit = text('limit') === undefined ? undefined : Number(text('limit'));
    const list = runs.list(principalOf(response), {
      machine: text('machine'),
      since: sinceMs,
      state: state as RunState | undefined,
      limit,
    });
    response.json({ runs: list.map(runView) });
  });
  router.get('/runs/:id', accepts('getRun'), (request, response) => {
    response.json(runView(runs.get(principalOf(response), String(request.params.id))));
  });
  return router;
}
