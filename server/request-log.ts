// Every request gets an id (a sane X-Request-Id from the caller or proxy, else a new
// one), echoed in the response and carried by every log line written while it is
// handled; and one access line at debug when it ends. Paths only: query strings and
// headers, where secrets could travel, are never logged.
import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { type Logger, logContext } from '../src/core/log.js';
import type { Principal } from './auth.js';
import { clientAddress, type TrustedProxies } from './client-address.js';

export const REQUEST_ID_HEADER = 'X-Request-Id';
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

export function requestIdOf(request: Request): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** Who made the request, for the access log: a role and a name, never the secret. */
function principalText(response: Response): string | null {
  const principal = response.locals.principal as Principal | undefined;
  if (!principal) return null;
  return `${principal.role} ${principal.machine ?? `token ${principal.tokenId}`}`;
}

function bytesSent(response: Response): number {
  const length = Number(response.getHeader('content-length'));
  return Number.isFinite(length) ? length : 0;
}

export function requestLog(log: Logger, proxies: TrustedProxies): RequestHandler {
  return (request, response, next) => {
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(request);
    // Routers rewrite request.path for their mount point: keep the whole one.
    const requestPath = request.path;
    response.setHeader(REQUEST_ID_HEADER, requestId);
    response.on('finish', () => {
      log.debug(
        {
          requestId,
          method: request.method,
          path: requestPath,
          status: response.statusCode,
          bytes: bytesSent(response),
          durationMs: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100,
          remote: clientAddress(request, proxies),
          principal: principalText(response),
        },
        'request',
      );
    });
    logContext.run({ requestId }, next);
  };
}
