// Incidents, open and past, and the notifications sent about them.
import { Router } from 'express';
import { UsageError } from '../../src/core/errors.js';
import { requireRole } from '../auth.js';
import { principalOf } from '../http.js';
import { incidentView, type Incidents } from '../monitoring/incidents.js';
import type { Notifier } from '../notify/notifier.js';
import { accepts } from '../api-schemas/validate.js';

export function incidentRoutes(incidents: Incidents, notifier: Notifier): Router {
  const router = Router();
  router.get('/incidents', accepts('listIncidents'), (request, response) => {
    requireRole(principalOf(response), 'admin', 'auditor');
    const state = typeof request.query.state === 'string' ? request.query.state : 'all';
    if (!['open', 'resolved', 'all'].includes(state)) throw new UsageError('state must be open, resolved or all');
    const subject = typeof request.query.machine === 'string' ? request.query.machine : undefined;
    response.json({
      incidents: incidents
        .list({ state: state === 'all' ? undefined : (state as 'open' | 'resolved'), subject })
        .map(incidentView),
    });
  });
  router.get('/notifications', accepts('listNotifications'), (_request, response) => {
    requireRole(principalOf(response), 'admin', 'auditor');
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    response.json({
      notifications: notifier
        .deliveries()
        .map((row) => ({ ...row, createdAt: iso(row.createdAt), deliveredAt: iso(row.deliveredAt) })),
    });
  });
  return router;
}
