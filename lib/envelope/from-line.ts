// The UUCP From_ envelope at the start of an rmail payload: read the way sendmail's
// rmail reads it (every leading `From `/`>From ` line; bang paths built
// from `remote from` or the last `!`), and written in the one shape we emit. Pure and
// fed chunks; buffers at most LIMITS.maxFromLines lines of LIMITS.maxFromLine bytes.

import { InputError, type Result } from '../errors.js';
import { LIMITS } from '../limits.js';
import { checkSender } from './address.js';
import { formatCtime } from './ctime.js';

/** What the envelope says, with what sendmail's rmail would pass to sendmail. */
export interface UucpEnvelope {
  /** the sender rmail passes as `-f`: the systems joined with `!`, then the last user; `''` = null sender */
  sender: string;
  /** the user word of the last line (after splitting a bang path without `remote from`); `''` when empty */
  user: string;
  /** one system per line that names one (from `remote from`, or the part before the last `!`), in line order */
  systems: string[];
  /** the first system (rmail's from_sys), or null when no line names one */
  fromSystem: string | null;
  /** what rmail passes as `-p`: `UUCP`, `UUCP:<h>.UUCP` (host without a dot) or `UUCP:<h>` */
  protocol: string;
  /** the date text of line 1, as written (not checked: rmail does not check it either) */
  date: string;
  /** number of envelope lines consumed */
  lines: number;
  /** bytes of envelope consumed: the message starts at this offset of the payload */
  length: number;
}

export type FromLineIssueCode =
  | 'from-missing' // line 1 begins neither `From ` nor `>From `
  | 'from-truncated' // the payload ends inside an envelope line (no LF), or is empty
  | 'from-too-long' // an envelope line over LIMITS.maxFromLine bytes, or a sender over LIMITS.maxAddressLength
  | 'from-too-many-lines' // more than LIMITS.maxFromLines envelope lines
  | 'from-corrupt' // nothing after `From `, `remote from` without a host, a line ending in the sender's `!`
  | 'from-bang' // the sender word begins with `!`
  | 'from-bad-byte'; // NUL or another control character in the sender or system, or a sender that is not UTF-8

export type UucpEnvelopeOutcome = Result<{ envelope: UucpEnvelope; rest: Uint8Array }, FromLineIssueCode>;

export interface UucpEnvelopeOptions {
  /** rmail's `-D`: the word used in the protocol instead of `UUCP` */
  domain?: string;
}

const LF = 0x0a;
const FROM = Buffer.from('From ', 'latin1');
const GT_FROM = Buffer.from('>From ', 'latin1');
/** C isspace() in the C locale, without LF (lines are split at LF first) */
const WS = /[ \t\v\f\r]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
// made on first use: a front door whose stdin holds no From_ line never needs one
let utf8: TextDecoder | undefined;

/** 'yes' / 'no', or 'maybe' when `buf` from `pos` is a proper prefix of `prefix` */
function startsWith(buf: Uint8Array, pos: number, prefix: Uint8Array): 'yes' | 'no' | 'maybe' {
  const n = Math.min(prefix.length, buf.length - pos);
  for (let i = 0; i < n; i++) if (buf[pos + i] !== prefix[i]) return 'no';
  return n === prefix.length ? 'yes' : 'maybe';
}

function firstWord(s: string, from: number): string {
  let i = from;
  while (i < s.length && !WS.test(s[i] as string)) i++;
  return s.slice(from, i);
}

/**
 * bytes held in a latin1 string → text, refusing what is not UTF-8 or holds control
 * characters. A leading U+FEFF is kept (ignoreBOM): a TextDecoder drops it by default, and
 * the word would read back as another sender than the one written.
 */
function text(latin1: string): string | null {
  let value: string;
  try {
    value = (utf8 ??= new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })).decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return null;
  }
  return CONTROL.test(value) ? null : value;
}

interface LineFields {
  system: string | null;
  user: string;
  date: string;
}

type Fail = { ok: false; issue: { code: FromLineIssueCode; message: string } };

function fail(code: FromLineIssueCode, message: string): Fail {
  return { ok: false, issue: { code, message } };
}

/** One envelope line without its LF, after the `From `/`>From ` prefix, as rmail.c reads it. */
function parseLine(rest: string, lineNo: number): { ok: true; value: LineFields } | Fail {
  const where = `UUCP envelope line ${lineNo}`;
  if (rest === '') return fail('from-corrupt', `${where}: nothing after "From "`);
  if (rest.includes('\0')) return fail('from-bad-byte', `${where}: contains NUL`);
  // rmail.c looks for "remote from " anywhere after the first byte of the sender word.
  const remote = rest.indexOf('remote from ', 1);
  const word = firstWord(rest, 0);
  // rmail.c refuses a leading `!` only without `remote from`; we refuse it always (it
  // would make an empty hop in the path).
  if (word.startsWith('!')) return fail('from-bang', `${where}: the sender ${JSON.stringify(word)} begins with "!"`);
  let system: string | null = null;
  let user = word;
  if (remote >= 1) {
    system = firstWord(rest, remote + 12);
    if (system === '') return fail('from-corrupt', `${where}: "remote from" without a system name`);
  } else {
    const bang = word.lastIndexOf('!');
    if (bang > 0) {
      system = word.slice(0, bang);
      user = word.slice(bang + 1);
      // rmail.c refuses a `!` that ends the whole line; `a! <date>` is `a!<>` to it
      if (user === '' && word.length === rest.length) {
        return fail('from-corrupt', `${where}: the sender ${JSON.stringify(word)} ends the line with "!"`);
      }
    }
  }
  const dateEnd = remote >= 1 ? remote : rest.length;
  const date = rest.slice(word.length, Math.max(word.length, dateEnd)).trim();
  const sys = system === null ? null : text(system);
  const usr = text(user);
  if ((system !== null && sys === null) || usr === null) {
    return fail('from-bad-byte', `${where}: the sender or system holds a control character or is not UTF-8`);
  }
  return { ok: true, value: { system: sys, user: usr, date: Buffer.from(date, 'latin1').toString('utf8') } };
}

/**
 * Reads the envelope from the start of an rmail payload fed in chunks. `push` returns
 * null while it needs more bytes, then the outcome once (with the bytes after the
 * envelope that it has seen, `rest`); `end` says the payload is complete.
 */
export class UucpEnvelopeReader {
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  #lines = 0;
  #systems: string[] = [];
  #user = '';
  #date = '';
  #done: UucpEnvelopeOutcome | null = null;
  readonly #domain: string;

  constructor(options: UucpEnvelopeOptions = {}) {
    this.#domain = options.domain ?? 'UUCP';
  }

  push(chunk: Uint8Array): UucpEnvelopeOutcome | null {
    if (this.#done) return this.#done;
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    return this.#step(false);
  }

  end(): UucpEnvelopeOutcome {
    if (this.#done) return this.#done;
    return this.#step(true) as UucpEnvelopeOutcome;
  }

  #finish(outcome: UucpEnvelopeOutcome): UucpEnvelopeOutcome {
    this.#done = outcome;
    this.#buf = Buffer.alloc(0);
    return outcome;
  }

  #step(atEnd: boolean): UucpEnvelopeOutcome | null {
    const buf = this.#buf;
    for (;;) {
      const pos = this.#pos;
      let prefix = 0;
      const from = startsWith(buf, pos, FROM);
      // rmail.c takes `>From ` on line 1 too
      const gtFrom = startsWith(buf, pos, GT_FROM);
      if (from === 'yes') prefix = FROM.length;
      else if (gtFrom === 'yes') prefix = GT_FROM.length;
      else if ((from === 'maybe' || gtFrom === 'maybe') && !atEnd) {
        return null;
      }
      if (prefix === 0) {
        if (this.#lines === 0) {
          if (buf.length === 0) return this.#finish(fail('from-truncated', 'empty payload: no UUCP envelope line'));
          if (from === 'maybe' || gtFrom === 'maybe') {
            return this.#finish(fail('from-truncated', 'the payload ends inside the UUCP envelope line'));
          }
          return this.#finish(fail('from-missing', 'the payload does not begin with a UUCP "From " line'));
        }
        return this.#finish(this.#envelope(buf.subarray(pos)));
      }
      const lf = buf.indexOf(LF, pos);
      const lineLength = lf === -1 ? buf.length - pos : lf - pos + 1;
      if (lineLength > LIMITS.maxFromLine) {
        return this.#finish(fail('from-too-long', `UUCP envelope line ${this.#lines + 1} is longer than ${LIMITS.maxFromLine} bytes`));
      }
      if (lf === -1) {
        if (!atEnd) return null;
        return this.#finish(fail('from-truncated', `UUCP envelope line ${this.#lines + 1} has no newline`));
      }
      if (this.#lines >= LIMITS.maxFromLines) {
        return this.#finish(fail('from-too-many-lines', `more than ${LIMITS.maxFromLines} UUCP envelope lines`));
      }
      this.#lines++;
      const parsed = parseLine(buf.toString('latin1', pos + prefix, lf), this.#lines);
      if (!parsed.ok) return this.#finish(parsed);
      if (parsed.value.system !== null) this.#systems.push(parsed.value.system);
      this.#user = parsed.value.user;
      if (this.#lines === 1) this.#date = parsed.value.date;
      this.#pos = lf + 1;
    }
  }

  #envelope(rest: Uint8Array): UucpEnvelopeOutcome {
    const systems = this.#systems;
    const user = this.#user;
    // rmail.c writes `-f<>` for an empty user, and `-fc!<>` after a path; a null sender
    // is what both mean, so we keep it null (a user written `<>` too).
    const sender = user === '' || user === '<>' ? '' : systems.length > 0 ? `${systems.join('!')}!${user}` : user;
    if (Buffer.byteLength(sender) > LIMITS.maxAddressLength) {
      return fail('from-too-long', `the UUCP envelope sender is longer than ${LIMITS.maxAddressLength} bytes`);
    }
    const fromSystem = systems[0] ?? null;
    const d = this.#domain;
    const protocol = fromSystem === null ? d : fromSystem.includes('.') ? `${d}:${fromSystem}` : `${d}:${fromSystem}.${d}`;
    return {
      ok: true,
      value: {
        envelope: { sender, user, systems: [...systems], fromSystem, protocol, date: this.#date, lines: this.#lines, length: this.#pos },
        rest: Buffer.from(rest),
      },
    };
  }
}

/** Parse the envelope of a whole payload (or of its first bytes, when they hold the whole envelope and the line after it). */
export function parseUucpEnvelope(payload: Uint8Array, options: UucpEnvelopeOptions = {}): Result<UucpEnvelope, FromLineIssueCode> {
  const reader = new UucpEnvelopeReader(options);
  const outcome = reader.push(payload) ?? reader.end();
  return outcome.ok ? { ok: true, value: outcome.value.envelope } : outcome;
}

export interface FromLineFields {
  /** the envelope sender; never empty, `<>` or MAILER-DAEMON (send those as BSMTP) */
  sender: string;
  /** the date written as ctime, UTC */
  date: Date;
  /** this site's UUCP name, to add ` remote from <site>`; the receiver then prefixes `<site>!` to the sender */
  remoteFrom?: string;
}

const SITE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The one From_ line we write, with its LF:
 * `From <sender>  <ctime, 24 chars>[ remote from <site>]\n` (two spaces before the date,
 * like Postfix's pipe flag F and sendmail's U). Throws InputError `bad-sender` for a
 * sender an rmail receiver cannot take (see checkSender), `bad-envelope` for a bad site.
 */
export function formatFromLine(fields: FromLineFields): string {
  const checked = checkSender(fields.sender, 'rmail');
  if (!checked.ok) throw new InputError('bad-sender', checked.issue.message);
  let line = `From ${fields.sender}  ${formatCtime(fields.date)}`;
  if (fields.remoteFrom !== undefined) {
    const site = fields.remoteFrom;
    if (!SITE.test(site) || site.length > LIMITS.maxNameLength) {
      throw new InputError('bad-envelope', `site name ${JSON.stringify(site)} cannot follow "remote from"`);
    }
    line += ` remote from ${site}`;
  }
  line += '\n';
  if (Buffer.byteLength(line) > LIMITS.maxFromLine) {
    throw new InputError('bad-sender', `the From_ line would be longer than ${LIMITS.maxFromLine} bytes`);
  }
  return line;
}

/**
 * How many bytes of From_-like lines (`From `, `>From `, `>>From `…) begin `message`,
 * as Postfix's sendmail drops them (`skip_from_`); null when `message` ends inside
 * such a line and more bytes may follow (`atEnd` false). A message that begins with
 * one must lose it before it follows our From_ line, because an rmail receiver would
 * read it as part of the envelope. A line longer than LIMITS.maxFromLine ends the scan.
 */
export function leadingFromLines(message: Uint8Array, atEnd: boolean): number | null {
  let pos = 0;
  for (;;) {
    let p = pos;
    while (p < message.length && message[p] === 0x3e) p++;
    const m = startsWith(message, p, FROM);
    if (m === 'no') return pos;
    if (m === 'maybe') return atEnd ? pos : null;
    const lf = message.indexOf(LF, p);
    if (lf === -1) {
      if (message.length - pos >= LIMITS.maxFromLine) return pos;
      return atEnd ? message.length : null;
    }
    if (lf - pos + 1 > LIMITS.maxFromLine) return pos;
    pos = lf + 1;
  }
}
