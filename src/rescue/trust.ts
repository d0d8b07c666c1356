// Whether the rescue session may send a restore code or a token to a server: its TLS
// certificate's fingerprint is checked against one already known (the kernel line, or one
// confirmed earlier in the session), or shown to the technician to compare with the one
// the admin gave them. Nothing but a TLS handshake happens before that decision.
import { refuseClearTextOffLoopback } from '../client/plain-http.js';
import { probeServerCertificate } from '../client/tls-pin.js';
import { errorMessage } from '../core/errors.js';
import { isLoopbackHost } from '../core/listen.js';
import type { Prompter } from './prompter.js';

/** A fingerprint the server must present, and where it came from (for the messages). */
export interface KnownFingerprint {
  fingerprint: string;
  source: string;
}

/** Trusted: the fingerprint to pin (null for plain HTTP); refused: ask for the server again. */
export type TrustDecision = { trusted: true; fingerprint: string | null } | { trusted: false };

const PROBE_TIMEOUT_MS = 10_000;

/**
 * Plain HTTP carries the restore code and the disk in clear. Off the loopback it is refused,
 * as every client refuses it, unless B365_INSECURE_HTTP=1 was set on purpose; then the
 * technician still confirms, having been told what that means.
 */
async function plainHttpConsent(prompter: Prompter, url: URL): Promise<TrustDecision> {
  if (isLoopbackHost(url.hostname)) return { trusted: true, fingerprint: null };
  try {
    refuseClearTextOffLoopback(url.origin);
  } catch (error) {
    prompter.say(`  ${errorMessage(error)}`);
    return { trusted: false };
  }
  prompter.say(
    `  WARNING: ${url.origin} is plain HTTP. The restore code, the access it grants and every byte of the disk`,
  );
  prompter.say('  cross the network in clear, readable and changeable by anyone on the way.');
  const answer = await prompter.ask('  Send the restore code in clear anyway? (yes/no)', { default: 'no' });
  return answer === 'yes' ? { trusted: true, fingerprint: null } : { trusted: false };
}

async function confirmByHand(prompter: Prompter): Promise<boolean> {
  prompter.say('  Compare it with the fingerprint the admin gave you (b365 server fingerprint, or the one printed');
  prompter.say('  when the server first started). Only go on if every character is the same.');
  const answer = await prompter.ask('  Does the fingerprint match? (yes/no)', {
    check: (text) => (text === 'yes' || text === 'no' ? null : 'answer yes or no'),
  });
  return answer === 'yes';
}

/**
 * Decide whether `server` may receive the session's secrets. With a known fingerprint the
 * certificate must match it; without one the technician confirms what is shown.
 */
export async function decideTrust(
  prompter: Prompter,
  server: string,
  known: KnownFingerprint | null,
): Promise<TrustDecision> {
  const url = new URL(server);
  if (url.protocol === 'http:') return plainHttpConsent(prompter, url);
  prompter.say(`  checking the certificate of ${url.host} ...`);
  let certificate: Awaited<ReturnType<typeof probeServerCertificate>>;
  try {
    certificate = await probeServerCertificate(server, { timeoutMs: PROBE_TIMEOUT_MS });
  } catch (error) {
    prompter.say(`  ${errorMessage(error)}`);
    return { trusted: false };
  }
  prompter.say(`  server certificate SHA-256 fingerprint:`);
  prompter.say(`    ${certificate.fingerprint}`);
  prompter.say(`  subject: ${certificate.subject}; valid until ${String(certificate.validTo)}`);
  prompter.say(
    certificate.trustedByCa
      ? '  a certificate authority this system trusts vouches for it'
      : '  no certificate authority this system trusts vouches for it (self-signed or private CA)',
  );
  if (known) {
    if (certificate.fingerprint === known.fingerprint) {
      prompter.say(`  it matches ${known.source}`);
      return { trusted: true, fingerprint: known.fingerprint };
    }
    prompter.say(`  REFUSED: this is not the expected server; its certificate does not match ${known.source}.`);
    prompter.say(`    server:   ${certificate.fingerprint}`);
    prompter.say(`    expected: ${known.fingerprint}`);
    prompter.say('  Nothing was sent to it. Check the URL (or ask the admin whether the certificate changed).');
    return { trusted: false };
  }
  return (await confirmByHand(prompter)) ? { trusted: true, fingerprint: certificate.fingerprint } : { trusted: false };
}

/** What a session has come to trust: the kernel line's fingerprint, else those the technician confirmed, per server. */
export class SessionTrust {
  private readonly confirmed = new Map<string, string>();

  constructor(private readonly kernelFingerprint: string | null) {}

  known(server: string): KnownFingerprint | null {
    if (this.kernelFingerprint)
      return { fingerprint: this.kernelFingerprint, source: 'b365.fingerprint= from the kernel command line' };
    const confirmed = this.confirmed.get(new URL(server).origin);
    return confirmed ? { fingerprint: confirmed, source: 'the fingerprint confirmed earlier in this session' } : null;
  }

  remember(server: string, fingerprint: string | null): void {
    if (fingerprint) this.confirmed.set(new URL(server).origin, fingerprint);
  }
}
