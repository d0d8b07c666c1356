// Retention, garbage collection and an online reindex on demand (admin only; machine
// tokens can do none of them), and their history.
import { Router } from 'express';
import { assertMachineName } from '../../src/format/image-ref.js';
import { jsonBody, principalOf } from '../http.js';
import type { GarbageCollector } from '../jobs/gc.js';
import type { OnlineReindex } from '../jobs/online-reindex.js';
import type { Pruner } from '../jobs/prune.js';
import { accepts } from '../api-schemas/validate.js';

export function maintenanceRoutes(pruner: Pruner, gc: GarbageCollector, reindexer: OnlineReindex): Router {
  const router = Router();
  router.post('/prune', jsonBody, accepts('prune'), async (request, response) => {
    const body = (request.body ?? {}) as { machine?: unknown; dryRun?: unknown };
    const machine =
      body.machine === undefined || body.machine === null ? undefined : assertMachineName(body.machine, 'body.machine');
    response.json(await pruner.prune(principalOf(response), { machine, dryRun: body.dryRun === true }));
  });
  router.get('/prune', accepts('listPrunes'), (_request, response) => {
    response.json({ prunes: pruner.history(principalOf(response)) });
  });
  router.post('/gc', jsonBody, accepts('startGc'), (request, response) => {
    const body = (request.body ?? {}) as { dryRun?: unknown; graceSeconds?: unknown };
    response.status(202).json(gc.start(principalOf(response), body));
  });
  router.get('/gc', accepts('listGc'), (_request, response) => {
    response.json({ collections: gc.list(principalOf(response)) });
  });
  router.get('/gc/:id', accepts('getGc'), (request, response) => {
    response.json(gc.job(principalOf(response), String(request.params.id)));
  });
  router.post('/reindex', accepts('startReindex'), (_request, response) => {
    response.status(202).json(reindexer.start(principalOf(response)));
  });
  router.get('/reindex/:id', accepts('getReindex'), (request, response) => {
    response.json(reindexer.job(principalOf(response), String(request.params.id)));
  });
  return router;
}
