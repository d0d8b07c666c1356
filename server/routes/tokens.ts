// Token administration (admin only). A secret is shown once, at creation.
import { Router } from 'express';
import { UsageError } from '../../src/core/errors.js';
import { assertMachineName } from '../../src/format/image-ref.js';
import { requireRole } from '../auth.js';
import type { Role, TokenRecord } from '../catalog/catalog.js';
import { jsonBody, principalOf } from '../http.js';
import type { Repository } from '../repository.js';
import { MAX_TOKEN_TTL_SECONDS, ttlSecondsField } from '../request-fields.js';
import { accepts } from '../api-schemas/validate.js';

const CREATABLE: Role[] = ['admin', 'machine', 'auditor'];

export function tokenView(token: TokenRecord) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    ...token,
    createdAt: iso(token.createdAt),
    expiresAt: iso(token.expiresAt),
    revokedAt: iso(token.revokedAt),
    lastUsedAt: iso(token.lastUsedAt),
  };
}

export function tokenRoutes(repository: Repository): Router {
  const router = Router();

  router.post('/tokens', jsonBody, accepts('createToken'), (request, response) => {
    requireRole(principalOf(response), 'admin');
    const body = (request.body ?? {}) as { role?: unknown; machine?: unknown; label?: unknown; ttlSeconds?: unknown };
    const role = String(body.role ?? '') as Role;
    if (!CREATABLE.includes(role)) throw new UsageError(`role must be one of ${CREATABLE.join(', ')}`);
    // Everything is checked before the token is written: a refused request creates nothing.
    const machine =
      body.machine === undefined || body.machine === null ? null : assertMachineName(body.machine, 'body.machine');
    const ttl = ttlSecondsField(body.ttlSeconds, 'body.ttlSeconds', MAX_TOKEN_TTL_SECONDS) ?? null;
    const { secret, record } = repository.catalog.createToken({
      role,
      machine,
      label: typeof body.label === 'string' ? body.label : null,
      expiresAt: ttl === null ? null : repository.clock.now() + ttl * 1000,
    });
    repository.log.info({ token: record.id, role, machine }, 'token created');
    response.status(201).json({ token: secret, ...tokenView(record) });
  });

  router.get('/tokens', accepts('listTokens'), (_request, response) => {
    requireRole(principalOf(response), 'admin');
    response.json({ tokens: repository.catalog.listTokens().map(tokenView) });
  });

  router.delete('/tokens/:id', accepts('revokeToken'), (request, response) => {
    requireRole(principalOf(response), 'admin');
    repository.catalog.revokeToken(Number(request.params.id));
    response.json({ revoked: tokenView(repository.catalog.tokenById(Number(request.params.id))!) });
  });

  return router;
}
