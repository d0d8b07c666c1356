// Verification jobs and their signed reports, and the public key that checks them.
import { Router } from 'express';
import { jsonBody, principalOf } from '../http.js';
import type { Verifier } from '../jobs/verify.js';
import type { SigningKey } from '../signing.js';
import { accepts } from '../api-schemas/validate.js';

/** Public: anyone may fetch the key that checks the server's reports. */
export function keyRoutes(signingKey: SigningKey): Router {
  const router = Router();
  router.get('/keys', accepts('listKeys'), (_request, response) => {
    response.json({ keys: [{ keyId: signingKey.keyId, algorithm: 'ed25519', publicKey: signingKey.publicKeyPem }] });
  });
  return router;
}

export function verificationRoutes(verifier: Verifier): Router {
  const router = Router();
  router.post('/verifications', jsonBody, accepts('startVerification'), (request, response) => {
    response.status(202).json(verifier.start(principalOf(response), (request.body ?? {}) as Record<string, unknown>));
  });
  router.get('/verifications', accepts('listVerifications'), (_request, response) => {
    response.json({ verifications: verifier.list(principalOf(response)) });
  });
  router.get('/verifications/:id', accepts('getVerification'), (request, response) => {
    response.json(verifier.job(principalOf(response), String(request.params.id)));
  });
  router.get('/verifications/:id/report', accepts('getVerificationReport'), async (request, response) => {
    const bytes = await verifier.reportBytes(principalOf(response), String(request.params.id));
    response.setHeader('Content-Type', 'application/json');
    response.send(bytes);
  });
  return router;
}
