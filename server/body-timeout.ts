// Request bodies that stop arriving. While a body parser reads, a body that makes no
// progress for the configured idle time is answered 408 and its connection closed, so
// a stalled client gives back what it holds (an upload slot, a connection). The total
// time is not limited: a slow link that keeps sending is never cut.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';

export type BodyParser = (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void;

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
 * Watch the connection's received byte count while the body is read. Node's own socket
 * timeout is not used: the server sets it for keep-alive between requests, and
 * clearing it afterwards would keep idle connections open forever.
 */
function watchBody(request: Request, response: Response, idleMs: number): void {
  const socket = request.socket;
  let bytesSeen = socket.bytesRead;
  let progressAt = Date.now();
  const check = () => {
    if (socket.bytesRead !== bytesSeen) {
      bytesSeen = socket.bytesRead;
      progressAt = Date.now();
    } else if (Date.now() - progressAt >= idleMs) {
      stop();
      refuse(request, response, idleMs);
    }
  };
  const timer = setInterval(check, Math.min(1000, Math.max(50, idleMs / 10)));
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    request.off('end', stop);
    request.off('close', stop);
    response.off('close', stop);
  };
  request.once('end', stop);
  request.once('close', stop);
  response.once('close', stop);
}

/** Answer 408 and close the connection: the rest of that body is not wanted. */
function refuse(request: Request, response: Response, idleMs: number): void {
  const socket = request.socket;
  if (response.headersSent) {
    socket.destroy();
    return;
  }
  response.once('finish', () => socket.destroy());
  response
    .status(408)
    .set('Connection', 'close')
    .json({
      code: 'request_timeout',
      message: `the request body made no progress for ${idleMs / 1000} s; the request was dropped`,
    });
}

/** `parser` with the idle limit: from its start until the body ends, idleness is bounded. */
export function bodyIdleTimeout<Parser extends BodyParser>(parser: Parser): Parser {
  const limited: BodyParser = (request, response, next) => {
    const idleMs = idleLimitMs(request as Request);
    if (idleMs > 0 && expectsBody(request) && !request.complete)
      watchBody(request as Request, response as Response, idleMs);
    parser(request, response, next);
  };
  return limited as Parser;
}
