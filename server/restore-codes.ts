// Restore codes: short, read-aloud-able secrets an admin gives a technician. A code is
// exchanged for a token that reads only one machine's images until the code expires.
// Wrong guesses are rate limited per client address (never overall, so nobody can lock
// a technician out); every use is written to the audit trail. docs/security.md.
import { randomInt } from 'node:crypto';
import { AuthError, NotFoundError, UsageError, UserError } from '../src/core/errors.js';
import type { Principal } from './auth.js';
import { requireRole } from './auth.js';
import type { RestoreCodeRecord } from './catalog/catalog.js';
import { limitKeyOf } from './client-address.js';
import { FailureLimiter } from './rate-limit.js';
import type { Repository } from './repository.js';

/** Crockford's base32 without I, L, O, U: nothing to confuse when read over the phone. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const GROUPS = 3;
const GROUP_LENGTH = 4;
export const DEFAULT_CODE_TTL_MS = 4 * 60 * 60 * 1000;
export const MAX_CODE_TTL_MS = 30 * 24 * 60 * 60 * 1000;
/** Wrong codes one address (an IPv6 /64) may send per window; docs/security.md. */
export const FAILURES_PER_ADDRESS = 5;
export const FAILURE_WINDOW_MS = 15 * 60 * 1000;

export class RateLimitedError extends UserError {
  override readonly code = 'rate_limited';
}

export class RestoreCodeError extends AuthError {
  override readonly code: string;
  constructor(reason: 'invalid_code' | 'code_expired' | 'code_revoked', message: string) {
    super(message);
    this.code = reason;
  }
}

export function newRestoreCode(): string {
  const groups: string[] = [];
  for (let group = 0; group < GROUPS; group++) {
    let text = '';
    for (let position = 0; position < GROUP_LENGTH; position++) text += ALPHABET[randomInt(ALPHABET.length)];
    groups.push(text);
  }
  return groups.join('-');
}

/** Accept what a person types: any case, spaces or dashes, O for 0, I and L for 1. */
export function normalizeRestoreCode(text: string): string {
  const cleaned = text.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  if (cleaned.length !== GROUPS * GROUP_LENGTH || [...cleaned].some((character) => !ALPHABET.includes(character)))
    return '';
  return cleaned.match(new RegExp(`.{${GROUP_LENGTH}}`, 'g'))!.join('-');
}

export class RestoreCodes {
  private readonly limiter: FailureLimiter;

  constructor(private readonly repository: Repository) {
    // No overall budget: it would let anyone lock every technician out, and the code
    // space makes guessing infeasible even for a large botnet (docs/security.md).
    this.limiter = new FailureLimiter(() => repository.clock.now(), FAILURES_PER_ADDRESS, FAILURE_WINDOW_MS);
  }

  create(
    principal: Principal,
    machine: string,
    ttlMs = DEFAULT_CODE_TTL_MS,
    capture = false,
  ): { code: string; record: RestoreCodeRecord } {
    requireRole(principal, 'admin');
    if (!Number.isInteger(ttlMs) || ttlMs < 1000 || ttlMs > MAX_CODE_TTL_MS)
      throw new UsageError('a restore code lives between a second and 30 days');
    const { catalog } = this.repository;
    // A capture code may bring a new machine in; a restore code has nothing to restore.
    if (!capture && catalog.machineId(machine) === null)
      throw new NotFoundError(
        `machine ${machine} does not exist: it has no images, tokens or sessions to restore from`,
      );
    const code = newRestoreCode();
    const record = catalog.createRestoreCode({
      code,
      machine,
      expiresAt: catalog.now() + ttlMs,
      createdBy: principal.tokenId,
      capture,
    });
    catalog.audit('restore-code-created', {
      machine,
      detail: `code ${record.id}${capture ? ' (restore and capture)' : ''} valid until ${new Date(record.expiresAt).toISOString()}`,
    });
    this.repository.log.info({ code: record.id, machine }, 'restore code created');
    return { code, record };
  }

  exchange(
    text: string,
    remote: string,
  ): { token: string; machine: string; expiresAt: number; codeId: number; role: 'restore' | 'machine' } {
    const { catalog, log } = this.repository;
    const key = limitKeyOf(remote);
    const wait = this.limiter.retryAfter(key);
    if (wait > 0) {
      catalog.audit('restore-code-rate-limited', { remote });
      throw new RateLimitedError(`too many wrong restore codes; try again in ${Math.ceil(wait / 1000)} s`, {
        details: { retryAfterSeconds: Math.ceil(wait / 1000) },
      });
    }
    const code = normalizeRestoreCode(text);
    const record = code ? catalog.restoreCodeByCode(code) : null;
    const refuse = (reason: 'invalid_code' | 'code_expired' | 'code_revoked', message: string): never => {
      this.limiter.fail(key);
      catalog.audit('restore-code-refused', { machine: record?.machine ?? null, remote, detail: reason });
      // The warning with the client's address is the error handler's, as for tokens.
      log.info({ remote, reason, machine: record?.machine }, 'restore code refused');
      throw new RestoreCodeError(reason, message);
    };
    if (!record) return refuse('invalid_code', 'unknown restore code: check it with the admin who gave it');
    if (record.revokedAt !== null)
      return refuse('code_revoked', `restore code for ${record.machine} was revoked; ask the admin for a new one`);
    if (record.expiresAt <= catalog.now())
      return refuse(
        'code_expired',
        `restore code for ${record.machine} expired at ${new Date(record.expiresAt).toISOString()}; ask the admin for a new one`,
      );
    // A capture code gives a machine token (write its own images) for the code's lifetime.
    const role = record.capture ? 'machine' : 'restore';
    const { secret } = catalog.createToken({
      role,
      machine: record.machine,
      label: `restore code ${record.id}`,
      expiresAt: record.expiresAt,
      restoreCodeId: record.id,
    });
    catalog.restoreCodeUsed(record.id);
    catalog.audit('restore-code-used', {
      machine: record.machine,
      remote,
      detail: `code ${record.id}${record.capture ? ' (restore and capture)' : ''}`,
    });
    log.info({ code: record.id, machine: record.machine, remote, role }, 'restore code used');
    return { token: secret, machine: record.machine, expiresAt: record.expiresAt, codeId: record.id, role };
  }
}
