// Images and their manifests: list, show, read the manifest as stored, delete (admin).
import { Router } from 'express';
import { imageView } from '../image-view.js';
import { assertMachineName } from '../../src/format/image-ref.js';
import { principalOf } from '../http.js';
import type { Repository } from '../repository.js';
import { accepts } from '../api-schemas/validate.js';

export function imageRoutes(repository: Repository): Router {
  const router = Router();

  router.get('/images', accepts('listImages'), (request, response) => {
    const machine =
      request.query.machine === undefined ? undefined : assertMachineName(request.query.machine, 'query machine');
    response.json({ images: repository.listImages(principalOf(response), machine).map(imageView) });
  });

  router.get('/images/:id', accepts('getImage'), (request, response) => {
    response.json(imageView(repository.resolveImage(principalOf(response), String(request.params.id))));
  });

  router.get('/images/:id/manifest', accepts('getManifest'), async (request, response) => {
    const { image, bytes } = await repository.manifestBytes(principalOf(response), String(request.params.id));
    response.setHeader('Content-Type', 'application/json');
    response.setHeader('X-B365-Image', image.id);
    response.setHeader('X-B365-Manifest-Digest', image.manifestDigest);
    response.send(bytes);
  });

  router.delete('/images/:id', accepts('deleteImage'), async (request, response) => {
    response.json({
      deleted: imageView(await repository.deleteImage(principalOf(response), String(request.params.id))),
    });
  });

  return router;
}
