// Restore codes: created, listed and revoked by admins; exchanged (without a token)
// by a technician for a short-lived token scoped to one machine.
import { Router } from 'express';
import { UsageError } from '../../src/core/errors.js';
import { assertMachineName } from '../../src/format/image-ref.js';
import { requireRole } from '../auth.js';
import { clientAddress, type TrustedProxies } from '../client-address.js';
import type { RestoreCodeRecord } from '../catalog/catalog.js';
import { jsonBody, principalOf } from '../http.js';
import { MAX_CODE_TTL_MS, type RestoreCodes } from '../restore-codes.js';
import { ttlSecondsField } from '../request-fields.js';
import type { Repository } from '../repository.js';
import { accepts } from '../api-schemas/validate.js';

function codeView(record: RestoreCodeRecord) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    ...record,
    capture: Boolean(record.capture),
    createdAt: iso(record.createdAt),
    expiresAt: iso(record.expiresAt),
    revokedAt: iso(record.revokedAt),
    lastUsedAt: iso(record.lastUsedAt),
  };
}

/** The one route that needs no token: mounted before authentication. */
export function restoreCodeExchangeRoute(codes: RestoreCodes, proxies: TrustedProxies): Router {
  const router = Router();
  router.post('/restore-codes/exchange', jsonBody, accepts('exchangeRestoreCode'), (request, response) => {
    const body = (request.body ?? {}) as { code?: unknown };
    if (typeof body.code !== 'string') throw new UsageError('body.code must be the restore code');
    const result = codes.exchange(body.code, clientAddress(request, proxies));
    response.json({
      token: result.token,
      machine: result.machine,
      role: result.role,
      expiresAt: new Date(result.expiresAt).toISOString(),
    });
  });
  return router;
}

export function restoreCodeRoutes(repository: Repository, codes: RestoreCodes): Router {
  const router = Router();
  router.post('/restore-codes', jsonBody, accepts('createRestoreCode'), (request, response) => {
    const body = (request.body ?? {}) as { machine?: unknown; ttlSeconds?: unknown; capture?: unknown };
    requireRole(principalOf(response), 'admin');
    const machine = assertMachineName(body.machine, 'body.machine');
    const ttlSeconds = ttlSecondsField(body.ttlSeconds, 'body.ttlSeconds', MAX_CODE_TTL_MS / 1000);
    const ttl = ttlSeconds === undefined ? undefined : ttlSeconds * 1000;
    const { code, record } = codes.create(principalOf(response), machine, ttl, body.capture === true);
    response.status(201).json({ code, ...codeView(record) });
  });
  router.get('/restore-codes', accepts('listRestoreCodes'), (_request, response) => {
    requireRole(principalOf(response), 'admin');
    response.json({ codes: repository.catalog.listRestoreCodes().map(codeView) });
  });
  router.delete('/restore-codes/:id', accepts('revokeRestoreCode'), (request, response) => {
    requireRole(principalOf(response), 'admin');
    const id = Number(request.params.id);
    repository.catalog.revokeRestoreCode(id);
    repository.catalog.audit('restore-code-revoked', {
      machine: repository.catalog.restoreCodeById(id)!.machine,
      detail: `code ${id}`,
    });
    response.json({ revoked: codeView(repository.catalog.restoreCodeById(id)!) });
  });
  return router;
}
