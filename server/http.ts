// Shared HTTP plumbing: authentication middleware, body parsers with limits, and the
// error handler that turns typed errors into JSON bodies with a stable `code`.
import express, { type ErrorRequestHandler, type RequestHandler, type Response } from 'express';
import { AuthError, ConflictError, ForbiddenError, FormatError, NotFoundError, PayloadTooLargeError, RepositoryFullError, UnavailableError, UnsafeTargetError, UsageError, UserError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { authenticate, type Principal } from './auth.js';
import { bodyIdleTimeout } from './body-timeout.js';
import type { Catalog } from './catalog/catalog.js';
import { asRepositoryFull } from './storage-full.js';

export const JSON_LIMIT = '4mb';

export function principalOf(response: Response): Principal {
  return response.locals.principal as Principal;
}

export function requireAuth(catalog: Catalog): RequestHandler {
  return (request, response, next) => {
    response.locals.principal = authenticate(catalog, request.headers.authorization);
    next();
  };
}

export const jsonBody = bodyIdleTimeout(express.json({ limit: JSON_LIMIT, strict: true, type: () => true }));

export function rawBody(limitBytes: number): RequestHandler {
  return bodyIdleTimeout(express.raw({ limit: limitBytes, type: () => true }));
}

export function statusOf(error: UserError): number {
  if (error instanceof PayloadTooLargeError) return 413;
  if (error instanceof FormatError || error instanceof UsageError) return 400;
  if (error instanceof ForbiddenError) return 403;
  if (error instanceof AuthError) return 401;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof UnsafeTargetError) return 409;
  if (error instanceof UnavailableError) return 503;
  if (error instanceof RepositoryFullError) return 507;
  if (error.code === 'rate_limited') return 429;
  return 400;
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, request, response, _next) => {
    // A full disk met anywhere (catalog, keys, a job's files) is the client's to know.
    const error = asRepositoryFull(thrown, `${request.method} ${request.path}`);
    let userError: UserError | null = error instanceof UserError ? error : null;
    const parserError = error as BodyParserError;
    if (!userError && parserError?.type === 'entity.too.large') {
      userError = new PayloadTooLargeError(`request body is larger than the limit of ${parserError.limit} bytes for ${request.method} ${request.path}`);
    } else if (!userError && parserError?.type === 'entity.parse.failed') {
      userError = new FormatError(`request body is not valid JSON: ${parserError.message}`);
    } else if (!userError && (parserError?.type === 'request.aborted' || parserError?.type === 'request.size.invalid')) {
      userError = new FormatError(`request body was truncated: ${parserError.message}`);
    }
    if (!userError) {
      log.error({ err: error, method: request.method, path: request.path }, 'request failed');
      if (!response.headersSent) response.status(500).json({ code: 'internal', message: 'internal server error; see the server log' });
      return;
    }
    const status = statusOf(userError);
    log[status >= 500 ? 'error' : 'info']({ method: request.method, path: request.path, status, code: userError.code, msg2: userError.message }, 'request refused');
    if (!response.headersSent) response.status(status).json({ code: userError.code, message: userError.message, ...(userError.details ?? {}) });
  };
}
