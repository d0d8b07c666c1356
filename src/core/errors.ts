// Errors a user can meet. The CLI prints their message without a stack and exits
// with the code of their class; the exit codes are documented in docs/cli.md.

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  badInput: 3,
  notFound: 4,
  conflict: 5,
  auth: 6,
  unavailable: 7,
  unsafeTarget: 8,
  verificationFailed: 9,
  repositoryFull: 10,
  /** The server's TLS certificate matches neither a trusted CA nor the pinned fingerprint. */
  untrustedServer: 11,
  interrupted: 130,
  /** Interrupted by SIGTERM (128 + 15, as a shell reports it). */
  terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class UserError extends Error {
  readonly exitCode: ExitCode = ExitCode.failure;
  /** Stable machine-readable code, shared with the HTTP API's error bodies. */
  readonly code: string = 'error';
  /** Extra facts for scripts: sent in HTTP error bodies and `--json` error output. */
  details: Record<string, unknown> | undefined;
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options?.details;
  }
}

export class UsageError extends UserError {
  override readonly exitCode = ExitCode.usage;
  override readonly code = 'usage';
}

/** Bytes or documents that do not parse: a corrupt superblock, a malformed manifest, a bad frame. */
export class FormatError extends UserError {
  override readonly exitCode = ExitCode.badInput;
  override readonly code: string = 'bad_format';
}

export class DigestMismatchError extends FormatError {
  override readonly code = 'digest_mismatch';
  constructor(
    readonly expected: string,
    readonly actual: string,
    where: string,
  ) {
    super(`${where}: content hashes to ${actual}, expected ${expected}`, { details: { expected, actual } });
  }
}

/** A stored chunk that does not decode to the bytes its name promises, found at a place in a volume. */
export class CorruptChunkError extends FormatError {
  constructor(
    readonly digest: string,
    readonly position: number,
    readonly offset: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, { cause: options?.cause, details: { digest, position, offset } });
  }
}

export class NotFoundError extends UserError {
  override readonly exitCode = ExitCode.notFound;
  override readonly code: string = 'not_found';
}

export class ConflictError extends UserError {
  override readonly exitCode = ExitCode.conflict;
  override readonly code: string = 'conflict';
}

/** A commit that names chunks or indexes the repository does not hold. */
export class MissingObjectsError extends ConflictError {
  override readonly code = 'missing_objects';
}

export class AuthError extends UserError {
  override readonly exitCode = ExitCode.auth;
  override readonly code: string = 'unauthorized';
}

export class ForbiddenError extends AuthError {
  override readonly code = 'forbidden';
}

export class PayloadTooLargeError extends FormatError {
  override readonly code = 'payload_too_large';
}

export class UnavailableError extends UserError {
  override readonly exitCode = ExitCode.unavailable;
  override readonly code: string = 'unavailable';
}

/**
 * The repository's storage has no room left (ENOSPC, EDQUOT, SQLITE_FULL). Not an
 * outage: retrying cannot help until someone frees space, so clients stop at once.
 */
export class RepositoryFullError extends UserError {
  override readonly exitCode = ExitCode.repositoryFull;
  override readonly code = 'repository_full';
}

/** Refusal to touch a disk: too small, mounted, the running system, the wrong one. */
export class UnsafeTargetError extends UserError {
  override readonly exitCode = ExitCode.unsafeTarget;
  override readonly code: string = 'unsafe_target';
}

/** A disk or image file that does not take the bytes written to it: full, at its end, or failing. */
export class DeviceWriteError extends UserError {
  override readonly code = 'device_write_failed';
}

export class VerificationError extends UserError {
  override readonly exitCode = ExitCode.verificationFailed;
  override readonly code: string = 'verification_failed';
}

/**
 * The server's certificate is neither signed by a trusted CA for its name nor the one
 * pinned: nothing was sent to it. Never retried: waiting does not make it trustworthy.
 */
export class UntrustedServerError extends UserError {
  override readonly exitCode = ExitCode.untrustedServer;
  override readonly code = 'untrusted_server';
}

export class InterruptedError extends UserError {
  override readonly exitCode = ExitCode.interrupted;
  override readonly code = 'interrupted';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
