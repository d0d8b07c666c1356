// Backup policies: the default and per machine (admin changes them; auditors read).
import { Router } from 'express';
import { requireMachineAccess, requireRole } from '../auth.js';
import { jsonBody, principalOf } from '../http.js';
import type { Policies } from '../policies.js';
import { accepts } from '../api-schemas/validate.js';

export function policyRoutes(policies: Policies): Router {
  const router = Router();
  router.get('/policies', accepts('listPolicies'), (_request, response) => {
    requireRole(principalOf(response), 'admin', 'auditor');
    response.json({ policies: policies.list() });
  });
  router.get('/policies/:name', accepts('getPolicy'), (request, response) => {
    const principal = principalOf(response);
    if (principal.role === 'machine') requireMachineAccess(principal, String(request.params.name), 'metadata');
    else requireRole(principal, 'admin', 'auditor');
    response.json(policies.view(String(request.params.name)));
  });
  router.put('/policies/:name', jsonBody, accepts('setPolicy'), (request, response) => {
    requireRole(principalOf(response), 'admin');
    response.json(policies.set(String(request.params.name), request.body));
  });
  router.delete('/policies/:name', accepts('resetPolicy'), (request, response) => {
    requireRole(principalOf(response), 'admin');
    response.json(policies.remove(String(request.params.name)));
  });
  return router;
}
