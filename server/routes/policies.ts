// Backup policies: the default and per machine (admin changes them; auditors read).
import { Router } from 'express';
import { requireMachineAccess, requireRole } from '../auth.js';
import { jsonBody, principalOf } from '../http.js';
import type { Policies } from '../policies.js';

export function policyRoutes(policies: Policies): Router {
  const router = Router();
  router.get('/policies', (_request, response) => {
    requireRole(principalOf(response), 'admin', 'auditor');
    response.json({ policies: policies.list() });
  });
  router.get('/policies/:name', (request, response) => {
    const principal = principalOf(response);
    if (principal.role === 'machine') requireMachineAccess(principal, request.params.name, 'metadata');
    else requireRole(principal, 'admin', 'auditor');
    response.json(policies.view(request.params.name));
  });
  router.put('/policies/:name', jsonBody, (request, response) => {
    requireRole(principalOf(response), 'admin');
    response.json(policies.set(request.params.name, request.body));
  });
  router.delete('/policies/:name', (request, response) => {
    requireRole(principalOf(response), 'admin');
    response.json(policies.remove(request.params.name));
  });
  return router;
}
