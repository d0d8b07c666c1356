// Shared HTTP plumbing: authentication middleware, body parsers with limits, and the
// error handler that turns typed errors into JSON bodies with a stable `code`.
import { AsyncResource } from 'node:async_hooks';
import express, { type ErrorRequestHandler, type RequestHandler, type Response } from 'express';
import {
  AuthError,
  ConflictError,
  ForbiddenError,
  FormatError,
  NotFoundError,
  PayloadTooLargeError,
  RepositoryFullError,
  UnavailableError,
  UnsafeTargetError,
  UsageError,
  UserError,
} from '../src/core/errors.js';
import type { Logger } from '../src/core/log.js';
import { authenticate, type Principal } from './auth.js';
import { type BodyParser, bodyIdleTimeout } from './body-timeout.js';
import type { Catalog } from './catalog/catalog.js';
import { clientAddress, type TrustedProxies } from './client-address.js';
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

/**
 * A body parser calls `next` from a stream event, outside the request's async context;
 * binding `next` keeps the request id on the lines logged after the body is read.
 */
function keepingLogContext<Parser extends BodyParser>(parser: Parser): Parser {
  const bound: BodyParser = (request, response, next) => parser(request, response, AsyncResource.bind(next));
  return bound as Parser;
}

export const jsonBody = keepingLogContext(
  bodyIdleTimeout(express.json({ limit: JSON_LIMIT, strict: true, type: () => true })),
);

export function rawBody(limitBytes: number): RequestHandler {
  return keepingLogContext(bodyIdleTimeout(express.raw({ limit: limitBytes, type: () => true })));
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

/** Restore codes are refused with codes of their own; everything else is a token. */
export type AuthFailureKind = 'token' | 'restore_code';
const RESTORE_CODE_REFUSALS = new Set(['invalid_code', 'code_expired', 'code_revoked']);

export interface ErrorHandlerOptions {
  proxies: TrustedProxies;
  /** Called for each refused authentication (for the metrics). */
  onAuthFailure?: (kind: AuthFailureKind) => void;
}

export function errorHandler(log: Logger, options: ErrorHandlerOptions): ErrorRequestHandler {
  return (thrown: unknown, request, response, _next) => {
    // A full disk met anywhere (catalog, keys, a job's files) is the client's to know.
    const error = asRepositoryFull(thrown, `${request.method} ${request.path}`);
    let userError: UserError | null = error instanceof UserError ? error : null;
    const parserError = error as BodyParserError;
    if (!userError && parserError?.type === 'entity.too.large') {
      userError = new PayloadTooLargeError(
        `request body is larger than the limit of ${parserError.limit} bytes for ${request.method} ${request.path}`,
      );
    } else if (!userError && parserError?.type === 'entity.parse.failed') {
      userError = new FormatError(`request body is not valid JSON: ${parserError.message}`);
    } else if (
      !userError &&
      (parserError?.type === 'request.aborted' || parserError?.type === 'request.size.invalid')
    ) {
      userError = new FormatError(`request body was truncated: ${parserError.message}`);
    }
    if (!userError) {
      log.error({ err: error, method: request.method, path: request.path }, 'request failed');
      if (!response.headersSent)
        response.status(500).json({ code: 'internal', message: 'internal server error; see the server log' });
      return;
    }
    const status = statusOf(userError);
    if (userError instanceof AuthError && !(userError instanceof ForbiddenError)) {
      const kind: AuthFailureKind = RESTORE_CODE_REFUSALS.has(userError.code) ? 'restore_code' : 'token';
      options.onAuthFailure?.(kind);
      log.warn(
        {
          kind,
          code: userError.code,
          reason: userError.message,
          remote: clientAddress(request, options.proxies),
          method: request.method,
          path: request.path,
        },
        'authentication failed',
      );
    }
    log[status >= 500 ? 'error' : 'info'](
      { method: request.method, path: request.path, status, code: userError.code, msg2: userError.message },
      'request refused',
    );
    if (!response.headersSent)
      response.status(status).json({ code: userError.code, message: userError.message, ...(userError.details ?? {}) });
  };
}
