// Every refused credential (unknown, revoked or expired token; a wrong restore code) is
// logged at warn with the client's address and counted, so guessing shows in the log and
// on /metrics. Wrong roles (403) are not failures to authenticate and are not counted.
import type { ErrorRequestHandler } from 'express';
import { AuthError, ForbiddenError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { clientAddress, type TrustedProxies } from './client-address.js';

export type CredentialKind = 'token' | 'restore_code';

export function authFailureRecorder(log: Logger, proxies: TrustedProxies, count: (kind: CredentialKind) => void): ErrorRequestHandler {
  return (error: unknown, request, _response, next) => {
    if (error instanceof AuthError && !(error instanceof ForbiddenError)) {
      const kind: CredentialKind = request.path === '/restore-codes/exchange' ? 'restore_code' : 'token';
      log.warn({ client: clientAddress(request, proxies), method: request.method, path: request.path, kind, reason: error.message }, 'authentication failed');
      count(kind);
    }
    next(error);
  };
}
