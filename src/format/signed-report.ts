// Signed JSON documents (verification reports). The signature is Ed25519 over the
// canonical JSON of the report (object keys sorted, no whitespace), so anyone with the
// server's public key can check a report offline, and any edit breaks it.
import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { FormatError } from '../core/errors.js';
import { digestOf } from './digest.js';

export interface Signature {
  algorithm: 'ed25519';
  keyId: string;
  value: string;
}

export interface SignedDocument<T> {
  report: T;
  signature: Signature;
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
}

/** Key id: the first 16 hex digits of BLAKE3 over the raw 32-byte public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return digestOf(raw).slice(0, 16);
}

export function parsePublicKey(text: string): KeyObject {
  try {
    return createPublicKey(text.trim());
  } catch (error) {
    throw new FormatError(`not a PEM public key: ${(error as Error).message}`);
  }
}

export interface CheckResult {
  ok: boolean;
  reason: string;
  keyId: string;
}

/** Check a signed document against a public key. Never throws for a bad signature. */
export function checkSignedDocument(document: unknown, publicKey: KeyObject): CheckResult {
  const keyId = keyIdOf(publicKey);
  const signed = document as Partial<SignedDocument<unknown>>;
  if (!signed || typeof signed !== 'object' || !signed.report || !signed.signature)
    return { ok: false, reason: 'not a signed report: needs "report" and "signature"', keyId };
  if (signed.signature.algorithm !== 'ed25519')
    return { ok: false, reason: `unsupported signature algorithm ${signed.signature.algorithm}`, keyId };
  if (signed.signature.keyId !== keyId)
    return { ok: false, reason: `signed with key ${signed.signature.keyId}, this public key is ${keyId}`, keyId };
  const valid = verifySignature(
    null,
    Buffer.from(canonicalJson(signed.report)),
    publicKey,
    Buffer.from(signed.signature.value, 'base64'),
  );
  return {
    ok: valid,
    reason: valid ? 'signature valid' : 'signature does not match the report: it was altered or signed by another key',
    keyId,
  };
}
