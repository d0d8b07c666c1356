// Upload sessions: open/resume, heartbeat, "which are missing", object uploads,
// commit and abort. Each handler only translates HTTP to a Repository call.
import { Router } from 'express';
import { MAX_CHUNK_SIZE } from '../../src/format/chunk.js';
import { assertMachineName } from '../../src/format/image-ref.js';
import { MAX_INDEX_BYTES } from '../../src/format/fixed-index.js';
import { requireRole } from '../auth.js';
import { jsonBody, principalOf, rawBody } from '../http.js';
import type { Repository } from '../repository.js';
import { uploadSlot, type UploadSlots } from '../upload-slots.js';
import { imageView } from '../image-view.js';
import { accepts } from '../api-schemas/validate.js';

/** A frame may exceed its content by a 4-byte header per 4 MiB block plus framing. */
const frameLimit = (contentLimit: number): number => contentLimit + Math.ceil(contentLimit / (4 << 20)) * 4 + 64;

export function sessionRoutes(repository: Repository, options: { uploadSlots: UploadSlots }): Router {
  const router = Router();
  // accepts() refuses who may not upload before a slot is taken or a byte of the body read.
  const slot = uploadSlot(options.uploadSlots);

  router.post('/sessions', jsonBody, accepts('openSession'), (request, response) => {
    const body = (request.body ?? {}) as { id?: unknown; machine?: unknown; parent?: unknown };
    requireRole(principalOf(response), 'admin', 'machine');
    const session = repository.openSession(principalOf(response), {
      id: String(body.id ?? ''),
      machine: assertMachineName(body.machine, 'body.machine'),
      parent: typeof body.parent === 'string' ? body.parent : null,
    });
    response.status(200).json(session);
  });

  router.post('/sessions/:id/heartbeat', accepts('renewSession'), (request, response) => {
    response.json(repository.heartbeat(principalOf(response), String(request.params.id)));
  });

  router.post('/sessions/:id/missing', jsonBody, accepts('missingObjects'), (request, response) => {
    const body = (request.body ?? {}) as { digests?: unknown };
    response.json({ missing: repository.missing(principalOf(response), String(request.params.id), body.digests) });
  });

  const uploads = [
    { kind: 'chunk', path: 'chunks', operation: 'uploadChunk', limit: MAX_CHUNK_SIZE },
    { kind: 'index', path: 'indexes', operation: 'uploadIndex', limit: MAX_INDEX_BYTES },
  ] as const;
  for (const { kind, path, operation, limit } of uploads) {
    router.put(
      `/sessions/:id/${path}/:digest`,
      accepts(operation),
      slot,
      rawBody(frameLimit(limit)),
      async (request, response) => {
        const result = await repository.putObject(
          principalOf(response),
          String(request.params.id),
          kind,
          String(request.params.digest),
          bodyBuffer(request.body),
        );
        response.status(result.created ? 201 : 200).json(result);
      },
    );
  }

  router.post('/sessions/:id/commit', jsonBody, accepts('commitSession'), async (request, response) => {
    const result = await repository.commit(principalOf(response), String(request.params.id), request.body);
    response
      .status(result.created ? 201 : 200)
      .json({ image: imageView(result.image), manifestDigest: result.manifestDigest });
  });

  router.delete('/sessions/:id', accepts('abortSession'), (request, response) => {
    response.json(repository.abortSession(principalOf(response), String(request.params.id)));
  });

  return router;
}

function bodyBuffer(body: unknown): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.alloc(0);
}
