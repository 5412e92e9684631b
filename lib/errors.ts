// Error classes with a stable `code`. The library throws these and never prints or
// exits; lib/cli/run.ts turns one into an exit status and one stderr line through
// lib/exit.ts.

import { meaningOf, type ErrorCode } from './exit.js';

export class MailbagError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MailbagError';
    this.code = code;
  }

  get temporary(): boolean {
    return meaningOf(this.code).temporary;
  }

  get exitCode(): number {
    return meaningOf(this.code).exitCode;
  }

  /** RFC 3463 enhanced status code, e.g. `5.1.3` */
  get status(): string {
    return meaningOf(this.code).status;
  }
}

/** Input that can never be accepted (bad envelope, bad recipient, oversized). */
export class InputError extends MailbagError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'InputError';
  }
}

/** A configuration file or command line the admin must fix. */
export class ConfigError extends MailbagError {
  /** the file the problem is in, when there is one */
  readonly file: string | undefined;
  /** the key within the file, dotted (`peers.hub.port`) */
  readonly key: string | undefined;

  constructor(message: string, options?: { file?: string; key?: string; cause?: unknown; code?: ErrorCode }) {
    const where = [options?.file, options?.key].filter(Boolean).join(': ');
    super(options?.code ?? 'config', where ? `${where}: ${message}` : message, options);
    this.name = 'ConfigError';
    this.file = options?.file;
    this.key = options?.key;
  }
}

/** The spool could not be written or read (full disk, permissions, corruption). */
export class SpoolError extends MailbagError {
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    const cause = options?.cause as NodeJS.ErrnoException | undefined;
    const full = cause?.code === 'ENOSPC' || cause?.code === 'EDQUOT';
    super(options?.code ?? (full ? 'spool-full' : 'spool'), message, options);
    this.name = 'SpoolError';
  }
}

/** The session with a peer failed: link, protocol or the peer's refusal. */
export class SessionError extends MailbagError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'SessionError';
  }
}

/**
 * Errors of a call on a file (not of a socket or a child): a file system gone read-only
 * (EROFS, as after an I/O error with errors=remount-ro), one we may not write, a failing
 * disk, no descriptors left. Raw, they were "unexpected error"s that callers such as the
 * runner counted as a job's ordinary retry (exit 0 while nothing could be done).
 */
const FILE_SYSCALLS = new Set([
  'open', 'close', 'read', 'write', 'unlink', 'rename', 'link', 'mkdir', 'rmdir', 'fsync', 'fdatasync', 'stat', 'lstat', 'fstat',
  'scandir', 'opendir', 'chmod', 'fchmod', 'ftruncate', 'mkdtemp', 'rm', 'utime', 'futime', 'copyfile', 'access', 'realpath',
]);
const FILE_ERRORS: Record<string, string> = {
  EROFS: 'not writable',
  EACCES: 'not accessible', // a read too (a root-owned 0600 job), not only a write
  EPERM: 'not accessible',
  EIO: 'disk error',
  EMFILE: 'out of file descriptors',
  ENFILE: 'out of file descriptors',
};

/** Turn anything thrown into a MailbagError; unknown errors are `internal` (temporary). */
export function asMailbagError(err: unknown): MailbagError {
  if (err instanceof MailbagError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && (e.code === 'ENOSPC' || e.code === 'EDQUOT')) {
    return new SpoolError(`no space left: ${e.message}`, { cause: err });
  }
  if (e?.code && Object.hasOwn(FILE_ERRORS, e.code) && FILE_SYSCALLS.has(e.syscall ?? '')) {
    return new SpoolError(`${FILE_ERRORS[e.code]!}: ${e.message}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new MailbagError('internal', `unexpected error: ${message}`, { cause: err });
}

/** A decoder of untrusted bytes returns this instead of throwing. */
export type Result<T, C extends string = string> =
  | { ok: true; value: T }
  | { ok: false; issue: { code: C; message: string } };
