// Which TLS servers a client talks to: one whose certificate a trusted CA signed for the
// name dialled, or one whose certificate has the pinned SHA-256 fingerprint (then, as with
// SSH's known_hosts, the name is not checked: the pin is the stronger proof). The check runs
// after the handshake and before the socket is handed to HTTP, so a refused server never
// receives a request byte (the Authorization header above all).
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { UntrustedServerError, UsageError } from '../core/errors.js';

/** Debian's bundle of the CAs the administrator trusts (update-ca-certificates). */
const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const HANDSHAKE_TIMEOUT_MS = 30_000;

export interface PresentedCertificate {
  /** SHA-256 of the leaf certificate, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint: string;
  /** Signed by a trusted CA and valid for the host name dialled. */
  trustedByCa: boolean;
  subject: string;
  validTo: string;
}

/**
 * The canonical form of a SHA-256 fingerprint (upper-case hex pairs joined by colons) from
 * what people paste: with or without colons, any case, a `sha256:` or `SHA256=` prefix.
 */
export function normalizeFingerprint(text: string): string {
  const bare = text.trim().replace(/^sha-?256\s*(fingerprint)?\s*[:=]?\s*/i, '');
  const hex = bare.replace(/[:\s]/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new UsageError(
      `${JSON.stringify(text)} is not a SHA-256 certificate fingerprint: expected 64 hex digits (32 bytes, colons allowed), as \`b365 server fingerprint\` prints`,
    );
  }
  return hex.toUpperCase().match(/../g)!.join(':');
}

let trustedCas: { extra: string | undefined; context: tls.SecureContext } | null = null;

/**
 * Node's own CA list, the system's bundle and NODE_EXTRA_CA_CERTS, in one context built
 * once per process: a private CA installed with update-ca-certificates is trusted too.
 */
function trustedCaContext(): tls.SecureContext {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (trustedCas && trustedCas.extra === extra) return trustedCas.context;
  const ca = [...tls.rootCertificates];
  for (const file of [SYSTEM_CA_BUNDLE, extra]) {
    if (!file) continue;
    try {
      ca.push(fs.readFileSync(file, 'utf8'));
    } catch {
      // An absent bundle only means fewer trusted CAs.
    }
  }
  trustedCas = { extra, context: tls.createSecureContext({ ca, minVersion: 'TLSv1.2' }) };
  return trustedCas.context;
}

function describe(socket: tls.TLSSocket): PresentedCertificate {
  const certificate = socket.getPeerCertificate();
  const subject = certificate.subject
    ? Object.entries(certificate.subject)
        .map(([key, value]) => `${key}=${String(value)}`)
        .join(', ')
    : '';
  return {
    fingerprint: certificate.fingerprint256 ?? '',
    trustedByCa: socket.authorized,
    subject,
    validTo: certificate.valid_to ?? '',
  };
}

function fixHint(presented: string): string {
  return `if this is your server (compare with \`b365 server fingerprint --repo DIR\` run on it), pass --fingerprint ${presented} or set B365_FINGERPRINT`;
}

/** Accept the server of `socket` or say, with both fingerprints, why not. */
export function judgeServer(socket: tls.TLSSocket, server: string, pin: string | null): PresentedCertificate {
  const presented = describe(socket);
  if (presented.trustedByCa || (pin !== null && presented.fingerprint === pin)) return presented;
  const reason = socket.authorizationError ? String(socket.authorizationError) : 'not trusted';
  const details = { server, expectedFingerprint: pin, presentedFingerprint: presented.fingerprint, caError: reason };
  if (pin === null) {
    throw new UntrustedServerError(
      `the server at ${server} presented a certificate no trusted CA vouches for (${reason}); its SHA-256 fingerprint is ${presented.fingerprint}; ${fixHint(presented.fingerprint)}`,
      { details },
    );
  }
  throw new UntrustedServerError(
    `the server at ${server} presented a certificate that does not match the pinned fingerprint: expected ${pin}, presented ${presented.fingerprint} (and no trusted CA vouches for it: ${reason}); nothing was sent to it. ` +
      `If the server's certificate was replaced on purpose, update --fingerprint, B365_FINGERPRINT or the agent configuration with the new one from \`b365 server fingerprint\`; otherwise someone may be intercepting the connection`,
    { details },
  );
}

/** Handshake with the server, then judge it; resolves only for a trusted server. */
function secureConnect(
  options: tls.ConnectionOptions,
  server: string,
  pin: string | null,
  timeoutMs: number,
): Promise<{ socket: tls.TLSSocket; presented: PresentedCertificate }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      ...options,
      secureContext: trustedCaContext(),
      rejectUnauthorized: false,
      session: undefined,
    });
    const timer = setTimeout(
      () =>
        socket.destroy(
          Object.assign(new Error(`no TLS handshake with ${server} within ${Math.round(timeoutMs / 1000)} s`), {
            code: 'ETIMEDOUT',
          }),
        ),
      timeoutMs,
    );
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      try {
        resolve({ socket, presented: judgeServer(socket, server, pin) });
      } catch (error) {
        socket.destroy();
        reject(error);
      }
    });
  });
}

/**
 * A keep-alive HTTPS agent that hands HTTP a socket only once its server passed
 * judgeServer. It remembers the certificate it accepted, so a command can tell the
 * user the fingerprint of the server it just talked to.
 */
export class PinnedAgent extends https.Agent {
  /** The certificate of the last server accepted. */
  accepted: PresentedCertificate | null = null;

  constructor(
    private readonly pin: string | null,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(
    options: https.RequestOptions,
    callback?: (error: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const host = options.host ?? options.hostname ?? 'localhost';
    const server = `https://${net.isIPv6(host) ? `[${host}]` : host}:${options.port ?? 443}`;
    const timeoutMs = Math.min(options.timeout || HANDSHAKE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS);
    secureConnect(options as tls.ConnectionOptions, server, this.pin, timeoutMs).then(
      ({ socket, presented }) => {
        this.accepted = presented;
        callback?.(null, socket);
      },
      (error: Error) => callback?.(error, undefined as unknown as Duplex),
    );
    // Returning nothing tells http.Agent to wait for the callback.
    return undefined;
  }
}

/**
 * Connect to `serverUrl`, read the certificate it presents and hang up, sending nothing
 * else: what a person is shown before they decide to trust a server.
 */
export async function probeServerCertificate(
  serverUrl: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<PresentedCertificate> {
  const url = new URL(serverUrl);
  if (url.protocol !== 'https:')
    throw new UsageError(`${serverUrl} is not an https:// URL: there is no certificate to show`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const timeoutMs = options.timeoutMs ?? 10_000;
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port: Number(url.port || 443),
      servername: net.isIP(host) ? undefined : host,
      secureContext: trustedCaContext(),
      rejectUnauthorized: false,
    });
    const finish = (error: Error | null, presented?: PresentedCertificate) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', abort);
      socket.destroy();
      if (error) reject(error);
      else resolve(presented!);
    };
    const abort = () => finish(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    const timer = setTimeout(
      () =>
        finish(
          Object.assign(new Error(`no TLS handshake with ${serverUrl} within ${Math.round(timeoutMs / 1000)} s`), {
            code: 'ETIMEDOUT',
          }),
        ),
      timeoutMs,
    );
    options.signal?.addEventListener('abort', abort, { once: true });
    socket.once('error', (error) => finish(error));
    socket.once('secureConnect', () => finish(null, describe(socket)));
  });
}
