// The address checks the front doors apply before an address goes into a job. An
// rmail job carries recipients as command arguments that uuxqt-style receivers split
// at whitespace and sendmail may take for options; a BSMTP job carries them inside
// `<…>` on a command line. Pure; each check returns a Result with a literal code.

import type { Result } from '../errors.js';
import { LIMITS } from '../limits.js';

/** which kind of job the address is meant for */
export type AddressJob = 'rmail' | 'bsmtp';

/**
 * NUL, C0 controls (CR, LF, TAB included), DEL and the C1 controls (U+0080-U+009F, as
 * code points: UTF-8's continuation bytes are not C1): never part of an address we
 * carry; a job header refuses them too (lib/job/header.ts)
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function describe(address: string): string {
  return JSON.stringify(address.length > 80 ? `${address.slice(0, 80)}…` : address);
}

function common(address: string): string | null {
  if (CONTROL.test(address)) return 'contains a control character (NUL, CR, LF, TAB or another)';
  const bytes = Buffer.byteLength(address, 'utf8');
  if (bytes > LIMITS.maxAddressLength) return `is ${bytes} bytes long, over the limit of ${LIMITS.maxAddressLength}`;
  return null;
}

/**
 * A recipient for a job. Refused (code `bad-recipient`): empty; beginning with `-`
 * (sendmail would take it for an option); a control character or NUL; longer than
 * LIMITS.maxAddressLength bytes of UTF-8; for rmail, a space (uuxqt re-splits the
 * command at whitespace, so the address would break: send it as BSMTP instead); for
 * BSMTP, `<` or `>` (the address is written inside `<…>`).
 */
export function checkRecipient(address: string, job: AddressJob): Result<string, 'bad-recipient'> {
  const fail = (why: string): Result<string, 'bad-recipient'> => ({
    ok: false,
    issue: { code: 'bad-recipient', message: `recipient ${describe(address)} ${why}` },
  });
  if (address === '') return fail('is empty');
  if (address.startsWith('-')) return fail('begins with "-"');
  const why = common(address);
  if (why) return fail(why);
  if (job === 'rmail' && address.includes(' ')) {
    return fail('contains a space, which an rmail job cannot carry (uuxqt splits arguments at whitespace)');
  }
  if (job === 'bsmtp' && /[<>]/.test(address)) return fail('contains "<" or ">"');
  return { ok: true, value: address };
}

/** true for the names rmail receivers turn into a made-up sender (`MAILER-DAEMON@domain`) */
function isMailerDaemon(sender: string): boolean {
  return sender.toUpperCase() === 'MAILER-DAEMON';
}

/**
 * An envelope sender for a job; `''` is the null sender. Refused (code `bad-sender`):
 * a control character or NUL; over LIMITS.maxAddressLength bytes; for BSMTP, `<` or `>`.
 * (U+FFFD in an address from the command line is the front doors' refusal,
 * lib/cli/front-door.ts: these checks are also a peer's, reading jobs already queued.)
 * For rmail (a From_ line) also: the null sender, `<>` and `MAILER-DAEMON` (rmail
 * receivers cannot carry a null sender: send it as BSMTP `MAIL FROM:<>`), whitespace
 * (the sender is one word of the line), a `!` at the start or end (sendmail's rmail
 * refuses the first and cannot split the second), and a last `!`-part `<>` (`a!<>`,
 * which the receiver reads as the null sender).
 */
export function checkSender(sender: string, job: AddressJob): Result<string, 'bad-sender'> {
  const fail = (why: string): Result<string, 'bad-sender'> => ({
    ok: false,
    issue: { code: 'bad-sender', message: `sender ${describe(sender)} ${why}` },
  });
  const why = common(sender);
  if (why) return fail(why);
  if (job === 'bsmtp') {
    if (/[<>]/.test(sender)) return fail('contains "<" or ">"');
    return { ok: true, value: sender };
  }
  if (sender === '' || sender === '<>') return fail('is the null sender, which an rmail job cannot carry (use BSMTP)');
  if (isMailerDaemon(sender)) return fail('stands for the null sender, which an rmail job cannot carry (use BSMTP)');
  if (sender.includes(' ')) return fail('contains a space, which a From_ line cannot carry');
  if (sender.startsWith('!') || sender.endsWith('!')) return fail('begins or ends with "!"');
  // rmail reads the user after the last `!`; a user `<>` is the null sender to it
  if (sender.endsWith('!<>')) return fail('ends in "!<>", which an rmail receiver reads as the null sender');
  return { ok: true, value: sender };
}

/** true when `sender` can travel in an rmail job's From_ line; otherwise use BSMTP */
export function rmailCanCarrySender(sender: string): boolean {
  return checkSender(sender, 'rmail').ok;
}
