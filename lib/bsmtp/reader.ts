// A push reader for batched SMTP: fed arbitrary chunks, it emits each transaction's
// envelope, its body in chunks (dot-unstuffed, LF line ends) and its end, with the byte
// offsets of the body's (still dot-stuffed) text in the input: the one BSMTP parser of
// mailbag, for the enqueue front door and for the runner's index of a job
// (lib/deliver/bsmtp-index.ts, which reads bodies from the spool file by those offsets). It accepts
// what Exim -bS accepts that matters in practice (HELO/EHLO as RSET, QUIT, lower-case
// verbs, `MAIL FROM: a` without brackets, CRLF or LF) and refuses the rest with a
// literal code. Memory is bounded by the longest command line, never the message size.

import { InputError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { checkRecipient, checkSender } from '../envelope/address.js';
import { parseParam, splitPath, type BsmtpEnvelope, type EsmtpParam } from './envelope.js';

export type BsmtpIssueCode =
  | 'bsmtp-incomplete' // input ended inside DATA (no final `.`), inside a command line, or after MAIL/RCPT without DATA
  | 'bsmtp-unknown-command' // a verb we do not know (Exim abandons the batch there), or an empty command line
  | 'bsmtp-nul' // NUL in a command line
  | 'bsmtp-bare-cr' // a CR in a command line that is not just before its LF
  | 'bsmtp-command-too-long' // a command line over maxCommandLine bytes
  | 'bsmtp-line-too-long' // a line of message text over maxTextLine bytes
  | 'bsmtp-sequence' // RCPT before MAIL, MAIL twice, DATA without RCPT
  | 'bsmtp-syntax' // a malformed MAIL/RCPT/DATA line or ESMTP parameter, or a command that is not UTF-8
  | 'bsmtp-bad-address' // a sender or recipient our checks refuse (see checkSender/checkRecipient)
  | 'bsmtp-too-many-transactions'
  | 'bsmtp-too-many-recipients'
  | 'bsmtp-too-big' // a message body over maxMessageSize bytes
  | 'bsmtp-empty'; // (validateBsmtp, BsmtpChecker) no transaction at all

export interface BsmtpIssue {
  code: BsmtpIssueCode;
  /** what is wrong, without the line number (bsmtpIssueError adds `BSMTP line N: `) */
  message: string;
  /** 1-based line of the input where the problem was found */
  line: number;
}

/** Result with the issue's line number (the shape of Result in lib/errors.ts, plus `line`). */
export type BsmtpResult<T> = { ok: true; value: T } | { ok: false; issue: BsmtpIssue };

export type BsmtpEvent =
  /**
   * DATA was accepted: the body of transaction `index` (0-based) follows, from byte
   * `dataStart` of the input (the first byte after the DATA line, counted from the first
   * byte pushed); `line` is its MAIL command's
   */
  | { type: 'message'; envelope: BsmtpEnvelope; index: number; line: number; dataStart: number }
  /** body bytes, un-stuffed, LF line ends; a slice of the input when possible */
  | { type: 'body'; chunk: Buffer }
  /**
   * the final `.` of the current message: it is complete (`size` body bytes); its
   * dot-stuffed text ends before byte `dataEnd` of the input, where the `.` line starts
   */
  | { type: 'end-of-message'; index: number; size: number; dataEnd: number }
  /** QUIT: anything after it is ignored */
  | { type: 'quit'; line: number }
  /** the first error; the reader accepts nothing after it */
  | { type: 'error'; issue: BsmtpIssue };

export interface BsmtpReaderOptions {
  maxTransactions?: number;
  maxRecipients?: number;
  maxMessageSize?: number;
  maxCommandLine?: number;
  maxTextLine?: number;
  /** false: no 'body' events (sizes and checks as usual), for a caller that reads the text by offset */
  bodies?: boolean;
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const LF_BUF = Buffer.from('\n');
const utf8 = new TextDecoder('utf-8', { fatal: true });

type Mode = 'command' | 'data' | 'quit' | 'failed' | 'ended';
type TextState = 'line-start' | 'dot' | 'mid';

/** a Buffer over the same bytes (no copy) */
function view(u8: Uint8Array): Buffer {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

const NOOP_VERBS = new Set(['NOOP', 'VRFY', 'EXPN', 'ETRN', 'HELP']);

/** Reads one BSMTP stream. `push` and `end` return the events the new bytes complete. */
export class BsmtpReader {
  readonly #maxTransactions: number;
  readonly #maxRecipients: number;
  readonly #maxMessageSize: number;
  readonly #maxCommandLine: number;
  readonly #maxTextLine: number;
  readonly #bodies: boolean;

  #mode: Mode = 'command';
  /** input offset of the current chunk's first byte */
  #offset = 0;
  /** input offset just after the command line being executed */
  #cmdEnd = 0;
  /** input offset of the current text line's first byte (data mode) */
  #textLineAt = 0;
  #line = 1;
  // command mode
  #cmd: Buffer[] = [];
  #cmdLength = 0;
  #sender: string | null = null;
  #mailParams: EsmtpParam[] = [];
  #recipients: BsmtpEnvelope['recipients'] = [];
  #transactions = 0;
  #mailLine = 0;
  // data mode
  #text: TextState = 'line-start';
  #pendingCr = 0;
  #lineLength = 0;
  #size = 0;

  constructor(options: BsmtpReaderOptions = {}) {
    this.#maxTransactions = options.maxTransactions ?? LIMITS.maxBsmtpTransactions;
    this.#maxRecipients = options.maxRecipients ?? LIMITS.maxRecipients;
    this.#maxMessageSize = options.maxMessageSize ?? Number.POSITIVE_INFINITY;
    this.#maxCommandLine = options.maxCommandLine ?? LIMITS.maxBsmtpCommandLine;
    this.#maxTextLine = options.maxTextLine ?? LIMITS.maxBsmtpTextLine;
    this.#bodies = options.bodies ?? true;
  }

  /** true once QUIT, an error or end() has been seen: further input is ignored */
  get done(): boolean {
    return this.#mode === 'quit' || this.#mode === 'failed' || this.#mode === 'ended';
  }

  push(chunk: Uint8Array): BsmtpEvent[] {
    const events: BsmtpEvent[] = [];
    let i = 0;
    while (i < chunk.length && !this.done) {
      i = this.#mode === 'data' ? this.#data(chunk, i, events) : this.#command(chunk, i, events);
    }
    this.#offset += chunk.length;
    return events;
  }

  end(): BsmtpEvent[] {
    const events: BsmtpEvent[] = [];
    if (this.done) {
      if (this.#mode === 'quit') this.#mode = 'ended';
      return events;
    }
    if (this.#mode === 'data') {
      this.#fail(events, 'bsmtp-incomplete', `transaction ${this.#transactions} (MAIL in line ${this.#mailLine}) is incomplete: input ended inside its DATA (no final ".")`);
      return events;
    }
    if (this.#cmdLength > 0) {
      // a last command line without its LF: only a bare QUIT is taken as complete
      const last = Buffer.concat(this.#cmd).toString('latin1').replace(/\r$/, '');
      if (last.toUpperCase() !== 'QUIT') {
        this.#fail(events, 'bsmtp-incomplete', 'incomplete: input ended inside a command line');
        return events;
      }
      this.#cmd = [];
      this.#cmdLength = 0;
      this.#mode = 'ended';
      events.push({ type: 'quit', line: this.#line });
      return events;
    }
    if (this.#sender !== null) {
      this.#fail(events, 'bsmtp-incomplete', `transaction ${this.#transactions} (MAIL in line ${this.#mailLine}) is incomplete: input ended before its DATA`);
      return events;
    }
    this.#mode = 'ended';
    return events;
  }

  #fail(events: BsmtpEvent[], code: BsmtpIssueCode, message: string): void {
    this.#mode = 'failed';
    this.#cmd = [];
    events.push({ type: 'error', issue: { code, message, line: this.#line } });
  }

  #reset(): void {
    this.#sender = null;
    this.#mailParams = [];
    this.#recipients = [];
  }

  /** Collect one command line; returns the index after what was consumed. */
  #command(chunk: Uint8Array, i: number, events: BsmtpEvent[]): number {
    const lf = chunk.indexOf(LF, i);
    const stop = lf === -1 ? chunk.length : lf;
    this.#cmdLength += stop - i;
    // one CR before the LF is allowed on top of the limit
    if (this.#cmdLength > this.#maxCommandLine + 1) {
      this.#fail(events, 'bsmtp-command-too-long', `command line too long (over ${this.#maxCommandLine} bytes)`);
      return chunk.length;
    }
    this.#cmd.push(Buffer.from(chunk.subarray(i, stop)));
    if (lf === -1) return chunk.length;
    let line = this.#cmd.length === 1 ? (this.#cmd[0] as Buffer) : Buffer.concat(this.#cmd);
    this.#cmd = [];
    this.#cmdLength = 0;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > this.#maxCommandLine) {
      this.#fail(events, 'bsmtp-command-too-long', `command line too long (over ${this.#maxCommandLine} bytes)`);
      return chunk.length;
    }
    this.#cmdEnd = this.#offset + lf + 1;
    this.#execute(line, events);
    this.#line++;
    return lf + 1;
  }

  #execute(raw: Buffer, events: BsmtpEvent[]): void {
    if (raw.includes(0)) return this.#fail(events, 'bsmtp-nul', 'NUL in a command line');
    if (raw.includes(CR)) return this.#fail(events, 'bsmtp-bare-cr', 'bare CR in a command line');
    let line: string;
    try {
      line = utf8.decode(raw);
    } catch {
      return this.#fail(events, 'bsmtp-syntax', 'command line is not UTF-8');
    }
    const sp = line.indexOf(' ');
    const verb = (sp === -1 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp === -1 ? '' : line.slice(sp + 1);
    switch (verb) {
      case 'HELO':
      case 'EHLO':
      case 'RSET':
        this.#reset();
        return;
      case 'QUIT':
        this.#mode = 'quit';
        events.push({ type: 'quit', line: this.#line });
        return;
      case 'MAIL':
        return this.#mail(arg, events);
      case 'RCPT':
        return this.#rcpt(arg, events);
      case 'DATA':
        return this.#dataCommand(arg, events);
      default:
        if (NOOP_VERBS.has(verb)) return;
        if (line === '') return this.#fail(events, 'bsmtp-unknown-command', 'empty command line');
        return this.#fail(events, 'bsmtp-unknown-command', `unknown command ${JSON.stringify(line.slice(0, 40))}`);
    }
  }

  /** `FROM:<path> params` / `TO:<path> params` → address and parameters, or why not */
  #path(arg: string, keyword: string): { address: string; params: EsmtpParam[] } | string {
    const m = /^ *([A-Za-z]+):/.exec(arg);
    if (!m || (m[1] as string).toUpperCase() !== keyword) return `expected "${keyword}:"`;
    const split = splitPath(arg.slice(m[0].length));
    if (!split) return 'unterminated "<"';
    const { path: address, rest, bracketed } = split;
    if (bracketed && rest !== '' && !rest.startsWith(' ')) return 'garbage after ">"';
    if (!bracketed && address === '') return 'no address';
    const params: EsmtpParam[] = [];
    for (const word of rest.split(' ')) {
      if (word === '') continue;
      const p = parseParam(word);
      if (typeof p === 'string') return p;
      params.push(p);
    }
    return { address, params };
  }

  #mail(arg: string, events: BsmtpEvent[]): void {
    if (this.#sender !== null) return this.#fail(events, 'bsmtp-sequence', 'MAIL inside a transaction (sender already given)');
    const p = this.#path(arg, 'FROM');
    if (typeof p === 'string') return this.#fail(events, 'bsmtp-syntax', `MAIL: ${p}`);
    const ok = checkSender(p.address, 'bsmtp');
    if (!ok.ok) return this.#fail(events, 'bsmtp-bad-address', ok.issue.message);
    if (this.#transactions >= this.#maxTransactions) {
      return this.#fail(events, 'bsmtp-too-many-transactions', `more than ${this.#maxTransactions} transactions`);
    }
    this.#transactions++;
    this.#sender = p.address;
    this.#mailParams = p.params;
    this.#mailLine = this.#line;
  }

  #rcpt(arg: string, events: BsmtpEvent[]): void {
    if (this.#sender === null) return this.#fail(events, 'bsmtp-sequence', 'RCPT before MAIL');
    const p = this.#path(arg, 'TO');
    if (typeof p === 'string') return this.#fail(events, 'bsmtp-syntax', `RCPT: ${p}`);
    const ok = checkRecipient(p.address, 'bsmtp');
    if (!ok.ok) return this.#fail(events, 'bsmtp-bad-address', ok.issue.message);
    if (this.#recipients.length >= this.#maxRecipients) {
      return this.#fail(events, 'bsmtp-too-many-recipients', `more than ${this.#maxRecipients} recipients`);
    }
    this.#recipients.push({ address: p.address, params: p.params });
  }

  #dataCommand(arg: string, events: BsmtpEvent[]): void {
    if (arg.trim() !== '') return this.#fail(events, 'bsmtp-syntax', 'DATA takes no argument');
    if (this.#sender === null) return this.#fail(events, 'bsmtp-sequence', 'DATA before MAIL');
    if (this.#recipients.length === 0) return this.#fail(events, 'bsmtp-sequence', 'DATA without RCPT');
    events.push({
      type: 'message',
      envelope: { sender: this.#sender, mailParams: this.#mailParams, recipients: this.#recipients },
      index: this.#transactions - 1,
      line: this.#mailLine,
      dataStart: this.#cmdEnd,
    });
    this.#reset();
    this.#mode = 'data';
    this.#text = 'line-start';
    this.#pendingCr = 0;
    this.#lineLength = 0;
    this.#size = 0;
  }

  /** Message text: un-stuff, strip CRs before LF, find the final `.`. Returns the index after what was consumed. */
  #data(chunk: Uint8Array, start: number, events: BsmtpEvent[]): number {
    const out: Uint8Array[] = [];
    let size = 0;
    const emit = (piece: Uint8Array): void => {
      if (piece.length === 0) return;
      if (this.#bodies) out.push(piece);
      size += piece.length;
    };
    const flush = (): boolean => {
      this.#size += size;
      if (out.length > 0) events.push({ type: 'body', chunk: out.length === 1 ? view(out[0] as Uint8Array) : Buffer.concat(out) });
      out.length = 0;
      size = 0;
      if (this.#size > this.#maxMessageSize) {
        this.#fail(events, 'bsmtp-too-big', `message ${this.#transactions} is larger than ${this.#maxMessageSize} bytes`);
        return false;
      }
      return true;
    };
    // a line's length counts every byte but its LF and one CR just before it
    const tooLong = (trailingCr: number): boolean => {
      if (this.#lineLength - Math.min(trailingCr, 1) <= this.#maxTextLine) return false;
      flush();
      if (this.#mode !== 'failed') this.#fail(events, 'bsmtp-line-too-long', `message text line too long (over ${this.#maxTextLine} bytes)`);
      return true;
    };
    const len = chunk.length;
    let i = start;
    while (i < len) {
      if (this.#text === 'line-start') {
        this.#lineLength = 0;
        this.#textLineAt = this.#offset + i;
        if (chunk[i] === DOT) {
          this.#text = 'dot';
          this.#lineLength = 1;
          i++;
          continue;
        }
        this.#text = 'mid';
      }
      if (this.#text === 'dot') {
        while (i < len && chunk[i] === CR) {
          this.#pendingCr++;
          this.#lineLength++;
          i++;
        }
        if (tooLong(this.#pendingCr)) return len;
        if (i === len) break;
        if (chunk[i] === LF) {
          // the final `.`: this message is complete
          this.#pendingCr = 0;
          this.#line++;
          if (!flush()) return len;
          events.push({ type: 'end-of-message', index: this.#transactions - 1, size: this.#size, dataEnd: this.#textLineAt });
          this.#mode = 'command';
          return i + 1;
        }
        // a stuffed line: drop its first `.`; CRs after it are text
        this.#text = 'mid';
        if (this.#pendingCr > 0) emit(Buffer.alloc(this.#pendingCr, CR));
        this.#pendingCr = 0;
        continue;
      }
      if (this.#pendingCr > 0) {
        while (i < len && chunk[i] === CR) {
          this.#pendingCr++;
          this.#lineLength++;
          i++;
        }
        if (tooLong(this.#pendingCr)) return len;
        if (i === len) break;
        if (chunk[i] === LF) {
          this.#pendingCr = 0;
          emit(LF_BUF);
          this.#line++;
          this.#text = 'line-start';
          i++;
          continue;
        }
        emit(Buffer.alloc(this.#pendingCr, CR));
        this.#pendingCr = 0;
      }
      const lf = chunk.indexOf(LF, i);
      const stop = lf === -1 ? len : lf;
      let end = stop;
      while (end > i && chunk[end - 1] === CR) end--;
      this.#lineLength += stop - i;
      if (tooLong(stop - end)) return len;
      if (lf === -1) {
        emit(chunk.subarray(i, end));
        this.#pendingCr = stop - end;
        break;
      }
      if (end === lf) {
        emit(chunk.subarray(i, lf + 1));
      } else {
        emit(chunk.subarray(i, end));
        emit(LF_BUF);
      }
      this.#line++;
      this.#text = 'line-start';
      i = lf + 1;
    }
    flush();
    return len;
  }
}

/**
 * The InputError a caller throws for an issue: `too-big` for bsmtp-too-big, `bad-bsmtp`
 * otherwise; its message reads `BSMTP line N: …` (a message that already says so is kept).
 */
export function bsmtpIssueError(issue: BsmtpIssue): InputError {
  const message = issue.message.startsWith('BSMTP line ') ? issue.message : `BSMTP line ${issue.line}: ${issue.message}`;
  return new InputError(issue.code === 'bsmtp-too-big' ? 'too-big' : 'bad-bsmtp', message);
}

export interface BsmtpSummary {
  transactions: Array<{ envelope: BsmtpEnvelope; size: number; line: number }>;
  /** true when the input ended with QUIT */
  quit: boolean;
}

/**
 * Checks a stream fed in chunks without keeping bodies: `push` returns the first issue
 * (then ignores the rest), `end` the list of envelopes or the issue. Used to validate
 * a BSMTP job while it is written to the spool.
 */
export class BsmtpChecker {
  readonly #reader: BsmtpReader;
  #issue: BsmtpIssue | null = null;
  #quit = false;
  #transactions: BsmtpSummary['transactions'] = [];
  #current: { envelope: BsmtpEnvelope; line: number } | null = null;

  constructor(options: BsmtpReaderOptions = {}) {
    this.#reader = new BsmtpReader(options);
  }

  push(chunk: Uint8Array): BsmtpIssue | null {
    if (!this.#issue) this.#take(this.#reader.push(chunk));
    return this.#issue;
  }

  end(): BsmtpResult<BsmtpSummary> {
    if (!this.#issue) this.#take(this.#reader.end());
    if (!this.#issue && this.#transactions.length === 0) {
      this.#issue = { code: 'bsmtp-empty', message: 'BSMTP input holds no transaction', line: 1 };
    }
    if (this.#issue) return { ok: false, issue: this.#issue };
    return { ok: true, value: { transactions: this.#transactions, quit: this.#quit } };
  }

  #take(events: BsmtpEvent[]): void {
    for (const e of events) {
      if (e.type === 'error') this.#issue = e.issue;
      else if (e.type === 'quit') this.#quit = true;
      else if (e.type === 'message') this.#current = { envelope: e.envelope, line: e.line };
      else if (e.type === 'end-of-message' && this.#current) {
        this.#transactions.push({ ...this.#current, size: e.size });
        this.#current = null;
      }
    }
  }
}

/** Validate a whole stream (chunks, sync or async) and return its envelopes. */
export async function validateBsmtp(
  source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  options: BsmtpReaderOptions = {},
): Promise<BsmtpResult<BsmtpSummary>> {
  const checker = new BsmtpChecker(options);
  for await (const chunk of source) {
    if (checker.push(chunk)) break;
  }
  return checker.end();
}

/** Read a whole stream held in memory (small inputs, tests): envelopes with their bodies. */
export function readBsmtp(
  input: Uint8Array,
  options: BsmtpReaderOptions = {},
): BsmtpResult<{ transactions: Array<{ envelope: BsmtpEnvelope; body: Buffer }>; quit: boolean }> {
  const reader = new BsmtpReader(options);
  const transactions: Array<{ envelope: BsmtpEnvelope; body: Buffer }> = [];
  let parts: Buffer[] = [];
  let envelope: BsmtpEnvelope | null = null;
  let quit = false;
  for (const e of [...reader.push(input), ...reader.end()]) {
    if (e.type === 'error') return { ok: false, issue: e.issue };
    if (e.type === 'quit') quit = true;
    else if (e.type === 'message') {
      envelope = e.envelope;
      parts = [];
    } else if (e.type === 'body') parts.push(e.chunk);
    else if (e.type === 'end-of-message' && envelope) {
      transactions.push({ envelope, body: Buffer.concat(parts) });
      envelope = null;
    }
  }
  return { ok: true, value: { transactions, quit } };
}
