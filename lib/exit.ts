// The one table of meanings: every failure mailbag knows maps here to a sysexits
// code, an RFC 3463 enhanced status code and soft/hard. Nobody else invents exit
// codes. Tools an MTA calls exit 0 or 75 on anything unexpected (Postfix bounces
// any status it does not know, and a crash must never bounce mail).

export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOINPUT = 66;
export const EX_NOUSER = 67;
export const EX_NOHOST = 68;
export const EX_UNAVAILABLE = 69;
export const EX_SOFTWARE = 70;
export const EX_OSERR = 71;
export const EX_TEMPFAIL = 75;
export const EX_PROTOCOL = 76;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

export interface Meaning {
  /** sysexits code the process exits with */
  exitCode: number;
  /** RFC 3463 enhanced status code, printed first on the stderr line */
  status: string;
  /** true: the MTA should keep the mail and retry */
  temporary: boolean;
}

/**
 * Every error code used in lib/, with its meaning. Permanent codes never use 73 or 74
 * (Postfix bounces them but other MTAs differ); temporary ones always use 75.
 */
export const MEANINGS = {
  // input that can never succeed
  'bad-recipient': { exitCode: EX_USAGE, status: '5.1.3', temporary: false },
  'bad-sender': { exitCode: EX_DATAERR, status: '5.1.7', temporary: false },
  'bad-envelope': { exitCode: EX_DATAERR, status: '5.6.0', temporary: false },
  'bad-message': { exitCode: EX_DATAERR, status: '5.6.0', temporary: false },
  'bad-bsmtp': { exitCode: EX_DATAERR, status: '5.5.2', temporary: false },
  'no-recipients': { exitCode: EX_USAGE, status: '5.1.3', temporary: false },
  'too-big': { exitCode: EX_DATAERR, status: '5.3.4', temporary: false },
  'forbidden-command': { exitCode: EX_NOPERM, status: '5.7.1', temporary: false },
  'bad-job': { exitCode: EX_DATAERR, status: '5.6.0', temporary: false },
  'bad-bag': { exitCode: EX_DATAERR, status: '5.6.0', temporary: false },  // a bag that is not plain job entries under the caps (lib/bag)
  // configuration: the admin must act, but the MTA keeps the mail meanwhile
  'usage': { exitCode: EX_TEMPFAIL, status: '4.3.5', temporary: true },
  'config': { exitCode: EX_TEMPFAIL, status: '4.3.5', temporary: true },
  'unknown-peer': { exitCode: EX_TEMPFAIL, status: '4.3.5', temporary: true },
  // the local system
  'spool-full': { exitCode: EX_TEMPFAIL, status: '4.3.1', temporary: true },
  'spool': { exitCode: EX_TEMPFAIL, status: '4.3.0', temporary: true },
  'locked': { exitCode: EX_TEMPFAIL, status: '4.3.0', temporary: true },
  'input': { exitCode: EX_TEMPFAIL, status: '4.3.0', temporary: true },
  // the link and the peer
  'unreachable': { exitCode: EX_TEMPFAIL, status: '4.4.1', temporary: true },
  'link': { exitCode: EX_TEMPFAIL, status: '4.4.2', temporary: true },
  'timeout': { exitCode: EX_TEMPFAIL, status: '4.4.2', temporary: true },
  'protocol': { exitCode: EX_PROTOCOL, status: '4.5.0', temporary: true },
  'peer-refused': { exitCode: EX_TEMPFAIL, status: '4.4.0', temporary: true },
  // configuration errors of a session that retrying will not fix (not MTA-facing)
  'auth': { exitCode: EX_NOPERM, status: '4.7.0', temporary: false },
  'host-key': { exitCode: EX_CONFIG, status: '4.7.0', temporary: false },
  // sync's and dispatch's command line or configuration (issue 3: not 75, which a cron'd
  // sync would retry for ever like a peer that is down); the mail stays queued: 4.x
  'session-usage': { exitCode: EX_USAGE, status: '4.3.5', temporary: false },
  'session-config': { exitCode: EX_CONFIG, status: '4.3.5', temporary: false },
  // delivery on the receiving side
  'delivery-temporary': { exitCode: EX_TEMPFAIL, status: '4.0.0', temporary: true },
  'delivery-permanent': { exitCode: EX_UNAVAILABLE, status: '5.0.0', temporary: false },
  // anything we did not foresee: never bounce mail because of our own bug
  'internal': { exitCode: EX_TEMPFAIL, status: '4.3.0', temporary: true },
} as const satisfies Record<string, Meaning>;

export type ErrorCode = keyof typeof MEANINGS;

export function meaningOf(code: ErrorCode): Meaning {
  return MEANINGS[code];
}
