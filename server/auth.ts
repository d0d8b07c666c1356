// Who is calling and what they may do (DESIGN.md decision 7). Tokens arrive as
// `Authorization: Bearer <secret>` and are looked up by their SHA-256.
import { AuthError, ForbiddenError } from '../src/core/errors.js';
import type { Catalog, Role } from './catalog/catalog.js';

export interface Principal {
  tokenId: number;
  role: Role;
  /** The machine a machine token or restore code is tied to. */
  machine: string | null;
}

export function authenticate(catalog: Catalog, authorization: string | undefined): Principal {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!match) throw new AuthError('missing bearer token (Authorization: Bearer <token>)');
  const record = catalog.tokenBySecret(match[1]!);
  if (!record) throw new AuthError('unknown token');
  if (record.revokedAt !== null) throw new AuthError('token has been revoked');
  if (record.expiresAt !== null && record.expiresAt <= catalog.now()) throw new AuthError('token has expired');
  catalog.tokenUsed(record.id);
  return { tokenId: record.id, role: record.role, machine: record.machine };
}

export function requireRole(principal: Principal, ...roles: Role[]): void {
  if (!roles.includes(principal.role)) {
    throw new ForbiddenError(`a ${principal.role} token may not do this (needs ${roles.join(' or ')})`);
  }
}

/** Admins reach every machine; machine tokens and restore codes only their own. */
export function requireMachineAccess(
  principal: Principal,
  machine: string,
  action: 'read' | 'write' | 'metadata',
): void {
  if (principal.role === 'admin') return;
  if (principal.role === 'auditor') {
    if (action === 'metadata') return;
    throw new ForbiddenError('an auditor token reads metadata and verifications, not image content');
  }
  if (principal.machine !== machine)
    throw new ForbiddenError(`this token belongs to machine ${principal.machine}, not ${machine}`);
  if (action === 'write' && principal.role !== 'machine')
    throw new ForbiddenError(`a ${principal.role} token cannot write images`);
}
