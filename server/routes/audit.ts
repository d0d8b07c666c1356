// The audit trail (restore code uses and refusals, and other security events).
import { Router } from 'express';
import { requireRole } from '../auth.js';
import { principalOf } from '../http.js';
import type { Repository } from '../repository.js';
import { accepts } from '../api-schemas/validate.js';

export function auditRoutes(repository: Repository): Router {
  const router = Router();
  router.get('/audit', accepts('listAuditEvents'), (request, response) => {
    requireRole(principalOf(response), 'admin', 'auditor');
    const kind = typeof request.query.kind === 'string' ? request.query.kind : undefined;
    const events = repository.catalog
      .auditEvents(kind)
      .map((event) => ({ ...event, time: new Date(event.time).toISOString() }));
    response.json({ events });
  });
  return router;
}
