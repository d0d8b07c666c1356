// Prometheus scrape endpoint, served at /metrics and /api/v1/metrics. It needs an admin
// or auditor token unless the server config makes it public.
import type { RequestHandler } from 'express';
import { authenticate, requireRole } from '../auth.js';
import type { Catalog } from '../catalog/catalog.js';
import type { Metrics } from '../monitoring/metrics.js';

export function metricsHandler(metrics: Metrics, catalog: Catalog, options: { public: boolean }): RequestHandler {
  return async (request, response) => {
    if (!options.public) requireRole(authenticate(catalog, request.headers.authorization), 'admin', 'auditor');
    const text = await metrics.text();
    response.setHeader('Content-Type', metrics.registry.contentType);
    response.send(text);
  };
}
