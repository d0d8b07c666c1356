// Stored objects by digest, as the LZ4 frames they are kept in.
import { Router } from 'express';
import { principalOf } from '../http.js';
import type { Repository } from '../repository.js';
import { accepts } from '../api-schemas/validate.js';

export function objectRoutes(repository: Repository): Router {
  const router = Router();
  for (const kind of ['chunk', 'index'] as const) {
    router.get(
      `/${kind === 'chunk' ? 'chunks' : 'indexes'}/:digest`,
      accepts(kind === 'chunk' ? 'getChunk' : 'getIndex'),
      async (request, response) => {
        const frame = await repository.objectFrame(principalOf(response), kind, String(request.params.digest));
        response.setHeader('Content-Type', 'application/octet-stream');
        response.setHeader('Cache-Control', 'private, max-age=31536000, immutable');
        response.send(frame);
      },
    );
  }
  return router;
}
