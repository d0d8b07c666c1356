// Prometheus scrape endpoint, served at /metrics and /api/v1/metrics (it needs an admin
// or auditor token unless the server config makes it public), and the middleware that
// times every request by its route pattern.
import type { RequestHandler } from 'express';
import { operations } from '../api-schemas/index.js';
import { authenticate, requireRole } from '../auth.js';
import type { Catalog } from '../catalog/catalog.js';
import type { Metrics } from '../monitoring/metrics.js';

const API_PREFIX = '/api/v1';
/** Requests that match no operation share one label value, so junk paths cannot grow the series. */
export const UNMATCHED_ROUTE = 'unmatched';

interface RoutePattern {
  method: string;
  route: string;
  pattern: RegExp;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `/images/{id}/volumes/{volume}/files/{path}`: the last parameter of a files path may hold slashes, or be absent. */
function patternOf(template: string): RegExp {
  const source = template
    .split(/(\{\w+\})/)
    .map((part) => (part === '{path}' ? '[^]*' : /^\{\w+\}$/.test(part) ? '[^/]+' : escapeRegExp(part)))
    .join('')
    .replace('/[^]*', '(?:/[^]*)?');
  return new RegExp(`^${source}/?$`);
}

const ROUTES: RoutePattern[] = [
  { method: 'GET', route: '/metrics', pattern: /^\/metrics\/?$/ },
  ...operations.map((operation) => ({
    method: operation.method.toUpperCase(),
    route: `${API_PREFIX}${operation.path}`,
    pattern: patternOf(`${API_PREFIX}${operation.path}`),
  })),
];

/** The route pattern of a request as the OpenAPI document names it (`/api/v1/images/{id}`). */
export function routeOf(method: string, path: string): string {
  const lookup = method === 'HEAD' ? 'GET' : method;
  return (
    ROUTES.find((candidate) => candidate.method === lookup && candidate.pattern.test(path))?.route ?? UNMATCHED_ROUTE
  );
}

export function requestDurations(metrics: Metrics): RequestHandler {
  return (request, response, next) => {
    const started = process.hrtime.bigint();
    // `close` also covers a client that went away mid-response; record each request once.
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      // originalUrl: routers rewrite request.url while they run, and a response may finish inside one.
      metrics.requestServed(
        request.method,
        routeOf(request.method, request.originalUrl.split('?')[0]!),
        response.statusCode,
        Number(process.hrtime.bigint() - started) / 1e9,
      );
    };
    response.once('finish', record);
    response.once('close', record);
    next();
  };
}

export function metricsHandler(metrics: Metrics, catalog: Catalog, options: { public: boolean }): RequestHandler {
  return async (request, response) => {
    if (!options.public) requireRole(authenticate(catalog, request.headers.authorization), 'admin', 'auditor');
    const text = await metrics.text();
    response.setHeader('Content-Type', metrics.registry.contentType);
    response.send(text);
  };
}
