// Verification jobs and their signed reports, and the public key that checks them.
import { Router } from 'express';
import { jsonBody, principalOf } from '../http.js';
import type { Verifier } from '../jobs/verify.js';
import type { SigningKey } from '../signing.js';

/** Public: anyone may fetch the key that checks the server's reports. */
export function keyRoutes(signingKey: SigningKey): Router {
  const router = Router();
  router.get('/keys', (_request, response) => {
    response.json({ keys: [{ keyId: signingKey.keyId, algorithm: 'ed25519', publicKey: signingKey.publicKeyPem }] });
  });
  return router;
}

export function verificationRoutes(verifier: Verifier): Router {
  const router = Router();
  router.post('/verifications', jsonBody, (request, response) => {
    response.status(202).json(verifier.start(principalOf(response), (request.body ?? {}) as Record<string, unknown>));
  });
  router.get('/verifications', (_request, response) => {
    response.json({ verifications: verifier.list(principalOf(response)) });
  });
  router.get('/verifications/:id', (request, response) => {
    response.json(verifier.job(principalOf(response), request.params.id));
  });
  router.get('/verifications/:id/report', async (request, response) => {
    const bytes = await verifier.reportBytes(principalOf(response), request.params.id);
    response.setHeader('Content-Type', 'application/json');
    response.send(bytes);
  });
  return router;
}
