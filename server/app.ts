// The Express application for /api/v1: public routes, then authentication, then the
// route modules, then JSON errors for everything else.
import express, { type Express } from 'express';
import { NotFoundError } from '../src/core/errors.js';
import type { Logger } from '../src/core/log.js';
import { VERSION } from '../src/core/version.js';
import { errorHandler, requireAuth } from './http.js';
import { openApiDocument } from './openapi.js';
import type { Repository } from './repository.js';
import { auditRoutes } from './routes/audit.js';
import { fileRoutes } from './routes/files.js';
import { FileAccess } from './files.js';
import { imageRoutes } from './routes/images.js';
import { machineRoutes } from './routes/machines.js';
import { objectRoutes } from './routes/objects.js';
import { restoreCodeExchangeRoute, restoreCodeRoutes } from './routes/restore-codes.js';
import { RestoreCodes } from './restore-codes.js';
import { TrustedProxies } from './client-address.js';
import { requestLog } from './request-log.js';
import { BODY_IDLE_TIMEOUT_SETTING } from './body-timeout.js';
import { UploadSlots } from './upload-slots.js';
import { sessionRoutes } from './routes/sessions.js';
import { tokenRoutes } from './routes/tokens.js';
import { keyRoutes, verificationRoutes } from './routes/verifications.js';
import { Verifier } from './jobs/verify.js';
import type { SigningKey } from './signing.js';
import { type ServerConfig, defaultConfig } from './config.js';
import { Nightly } from './nightly.js';
import { agentRoutes } from './routes/agents.js';
import { incidentRoutes } from './routes/incidents.js';
import { maintenanceRoutes } from './routes/maintenance.js';
import { OnlineReindex } from './jobs/online-reindex.js';
import { metricsHandler, requestDurations } from './routes/metrics.js';
import { policyRoutes } from './routes/policies.js';
import { runRoutes } from './routes/runs.js';

export interface AppOptions {
  signingKey: SigningKey;
  config?: ServerConfig;
}

export interface App {
  app: Express;
  verifier: Verifier;
  nightly: Nightly;
  reindexer: OnlineReindex;
}

export function createApp(repository: Repository, log: Logger, options: AppOptions): App {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const config = options.config ?? defaultConfig();
  const proxies = new TrustedProxies(config.http.trustProxy);
  app.use(requestLog(log, proxies));

  app.set(BODY_IDLE_TIMEOUT_SETTING, config.http.bodyIdleTimeoutSeconds * 1000);
  const uploadSlots = new UploadSlots(config.http.uploadSlots, config.http.uploadSlotsPerMachine);
  const nightly = new Nightly(repository, config, log);
  app.use(requestDurations(nightly.metrics));
  const metrics = metricsHandler(nightly.metrics, repository.catalog, config.metrics);
  app.get('/metrics', metrics);
  // Chunks and indexes served to readers, for the metrics.
  app.use('/api/v1', (request, response, next) => {
    const kind = request.method === 'GET' ? (/^\/(chunks|indexes)\//.exec(request.path)?.[1] ?? null) : null;
    if (kind)
      response.on(
        'finish',
        () =>
          response.statusCode === 200 &&
          nightly.metrics.served(
            kind === 'chunks' ? 'chunk' : 'index',
            Number(response.getHeader('content-length') ?? 0),
          ),
      );
    next();
  });

  const api = express.Router();
  api.get('/health', (_request, response) => {
    response.json({
      ok: true,
      version: VERSION,
      time: new Date(repository.clock.now()).toISOString(),
      timezone: config.timezone,
    });
  });
  const document = openApiDocument();
  api.get('/openapi.json', (_request, response) => {
    response.json(document);
  });
  const restoreCodes = new RestoreCodes(repository);
  const verifier = new Verifier(repository, options.signingKey);
  api.use(restoreCodeExchangeRoute(restoreCodes, proxies));
  api.use(keyRoutes(options.signingKey));
  api.get('/metrics', metrics);
  api.use(requireAuth(repository.catalog));
  api.use(sessionRoutes(repository, { uploadSlots }));
  api.use(imageRoutes(repository));
  api.use(objectRoutes(repository));
  api.use(machineRoutes(repository));
  api.use(tokenRoutes(repository));
  api.use(restoreCodeRoutes(repository, restoreCodes));
  api.use(auditRoutes(repository));
  api.use(verificationRoutes(verifier));
  api.use(policyRoutes(nightly.policies));
  api.use(agentRoutes(nightly.runs, nightly.policies, config, () => repository.clock.now()));
  api.use(runRoutes(nightly.runs));
  api.use(incidentRoutes(nightly.incidents, nightly.notifier));
  const reindexer = new OnlineReindex(repository, nightly.gc, log);
  api.use(maintenanceRoutes(nightly.pruner, nightly.gc, reindexer));
  api.use(fileRoutes(new FileAccess(repository)));

  app.use('/api/v1', api);
  app.use((request, _response, next) => {
    next(new NotFoundError(`no such endpoint: ${request.method} ${request.path}`));
  });
  app.use(errorHandler(log, { proxies, onAuthFailure: (kind) => nightly.metrics.authFailed(kind) }));
  return { app, verifier, nightly, reindexer };
}
