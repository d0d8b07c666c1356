// Request bodies that stop arriving. While a body parser reads, a body that makes no
// progress for the configured idle time is answered 408 and its connection closed, so
// a stalled client gives back what it holds (an upload slot, a connection). The total
// time is not limited: a slow link that keeps sending is never cut.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';

type BodyParser = (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void;

/** Express setting that holds the idle limit in milliseconds (0: none). */
export const BODY_IDLE_TIMEOUT_SETTING = 'b365 body idle timeout ms';
export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 30_000;

function expectsBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function idleLimitMs(request: Request): number {
  const setting = request.app?.get(BODY_IDLE_TIMEOUT_SETTING) as number | undefined;
  return setting ?? DEFAULT_BODY_IDLE_TIMEOUT_MS;
}

/**
 * Watch the socket while the body is read: Node's socket timeout counts time without
 * any traffic, and during a body nothing is written back, so it measures body progress.
 */
function watchBody(request: Request, response: Response, idleMs: number): void {
  const socket = request.socket;
  const onTimeout = () => {
    stop();
    if (response.headersSent) {
      socket.destroy();
      return;
    }
    response.once('finish', () => socket.destroy());
    response
      .status(408)
      .set('Connection', 'close')
      .json({ code: 'request_timeout', message: `the request body made no progress for ${idleMs / 1000} s; the upload was dropped` });
  };
  const stop = () => {
    request.off('timeout', onTimeout);
    request.off('end', stop);
    response.off('close', stop);
    if (!socket.destroyed) socket.setTimeout(0);
  };
  // A 'timeout' listener on the request keeps Node from destroying the socket unanswered.
  request.on('timeout', onTimeout);
  request.once('end', stop);
  response.once('close', stop);
  socket.setTimeout(idleMs);
}

/** `parser` with the idle limit: from its start until the body ends, idleness is bounded. */
export function bodyIdleTimeout<Parser extends BodyParser>(parser: Parser): Parser {
  const limited: BodyParser = (request, response, next) => {
    const idleMs = idleLimitMs(request as Request);
    if (idleMs > 0 && expectsBody(request) && !request.complete) watchBody(request as Request, response as Response, idleMs);
    parser(request, response, next);
  };
  return limited as Parser;
}
