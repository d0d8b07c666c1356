// Machines known to the repository and the base image for an incremental capture.
import { Router } from 'express';
import { assertMachineName } from '../../src/format/image-ref.js';
import { principalOf } from '../http.js';
import type { Repository } from '../repository.js';
import { imageView } from '../image-view.js';
import { accepts } from '../api-schemas/validate.js';

export function machineRoutes(repository: Repository): Router {
  const router = Router();

  router.get('/machines', accepts('listMachines'), (_request, response) => {
    const machines = repository.listMachines(principalOf(response)).map((machine) => ({
      ...machine,
      createdAt: new Date(machine.createdAt).toISOString(),
      lastSeenAt: machine.lastSeenAt === null ? null : new Date(machine.lastSeenAt).toISOString(),
    }));
    response.json({ machines });
  });

  router.get('/machines/:machine/base', accepts('baseImage'), (request, response) => {
    const disk = request.query.disk;
    const keys = (Array.isArray(disk) ? disk : disk === undefined ? [] : [disk]).map(String);
    const image = repository.baseImage(
      principalOf(response),
      assertMachineName(request.params.machine, 'machine in the path'),
      keys,
    );
    response.json({ image: image ? imageView(image) : null });
  });

  return router;
}
