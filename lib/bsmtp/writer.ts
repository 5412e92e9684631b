// Writes batched SMTP the way Exim's `use_bsmtp` does: `MAIL FROM:<s>`, one
// `RCPT TO:<r>` per recipient, `DATA`, the message dot-stuffed with LF line ends, `.`;
// no HELO or QUIT unless asked. Unlike Exim we keep the ESMTP parameters our jobs carry.
// The body encoder is a push state machine: constant memory whatever the message size.

import { Transform, type TransformCallback } from 'node:stream';
import { InputError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { checkBsmtpEnvelope, formatParams, type BsmtpEnvelope, type EsmtpParam } from './envelope.js';

/** An envelope to write; parameters may be left out. */
export interface BsmtpEnvelopeInit {
  sender: string;
  mailParams?: EsmtpParam[];
  recipients: Array<string | { address: string; params?: EsmtpParam[] }>;
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const LF_BUF = Buffer.from('\n');
const DOT_BUF = Buffer.from('.');
const END_BUF = Buffer.from('.\n');

function full(env: BsmtpEnvelopeInit): BsmtpEnvelope {
  return {
    sender: env.sender,
    mailParams: env.mailParams ?? [],
    recipients: env.recipients.map((r) => (typeof r === 'string' ? { address: r, params: [] } : { address: r.address, params: r.params ?? [] })),
  };
}

function commandLine(line: string): string {
  if (Buffer.byteLength(line) > LIMITS.maxBsmtpCommandLine) {
    throw new InputError('bad-bsmtp', `BSMTP command line would be longer than ${LIMITS.maxBsmtpCommandLine} bytes: ${line.slice(0, 60)}…`);
  }
  return `${line}\n`;
}

/**
 * The command lines of one transaction, up to and including `DATA\n`:
 * `MAIL FROM:<sender>[ params]\n`, `RCPT TO:<rcpt>[ params]\n`…, `DATA\n`.
 * Throws InputError (`bad-sender`, `bad-recipient`, `no-recipients`, `bad-bsmtp`)
 * for an envelope the reader would refuse.
 */
export function formatBsmtpEnvelope(init: BsmtpEnvelopeInit): string {
  const env = full(init);
  const checked = checkBsmtpEnvelope(env);
  if (!checked.ok) throw new InputError(checked.issue.code, checked.issue.message);
  let out = commandLine(`MAIL FROM:<${env.sender}>${formatParams(env.mailParams)}`);
  for (const r of env.recipients) out += commandLine(`RCPT TO:<${r.address}>${formatParams(r.params)}`);
  return `${out}DATA\n`;
}

/**
 * Dot-stuffs a message body fed in chunks. Lines end at LF. Normalisation, exactly:
 * every run of CRs just before an LF is dropped (CRLF → LF); a CR anywhere else is
 * kept; a body that does not end with LF gets one (after dropping trailing CRs); an
 * empty body stays empty. A `.` is added before every line that begins with `.`
 * (headers too). `end()` returns the rest and the final `.\n`. A line that would come out
 * longer than `maxLine` bytes (default LIMITS.maxBsmtpTextLine, what lib/bsmtp's reader
 * takes; its LF not counted, an added dot counted) throws InputError `bad-message`: the
 * reader on the far side would refuse the job, whose sender may be `<>` (nobody told).
 */
export class BsmtpBodyEncoder {
  #atLineStart = true;
  #pendingCr = 0;
  #ended = false;
  /** bytes written of the current output line */
  #lineLength = 0;
  readonly #maxLine: number;

  constructor(options: { maxLine?: number } = {}) {
    this.#maxLine = options.maxLine ?? LIMITS.maxBsmtpTextLine;
  }

  /** count `n` more bytes on the current output line */
  #grow(n: number): void {
    this.#lineLength += n;
    if (this.#lineLength > this.#maxLine) {
      throw new InputError('bad-message', `a line of the message is longer than ${this.#maxLine} bytes, more than a BSMTP job carries`);
    }
  }

  push(chunk: Uint8Array): Buffer {
    if (this.#ended) throw new Error('BsmtpBodyEncoder: push after end');
    const out: Uint8Array[] = [];
    const len = chunk.length;
    let i = 0;
    if (this.#pendingCr > 0 && len > 0) {
      let k = 0;
      while (k < len && chunk[k] === CR) k++;
      if (k === len) {
        this.#pendingCr += len;
        return Buffer.alloc(0);
      }
      if (chunk[k] === LF) {
        out.push(LF_BUF);
        this.#atLineStart = true;
        this.#lineLength = 0;
        i = k + 1;
      } else {
        this.#grow(this.#pendingCr);
        out.push(Buffer.alloc(this.#pendingCr, CR));
        this.#atLineStart = false;
      }
      this.#pendingCr = 0;
    }
    while (i < len) {
      if (this.#atLineStart && chunk[i] === DOT) {
        this.#grow(1);
        out.push(DOT_BUF);
      }
      this.#atLineStart = false;
      const lf = chunk.indexOf(LF, i);
      const stop = lf === -1 ? len : lf;
      let end = stop;
      while (end > i && chunk[end - 1] === CR) end--;
      this.#grow(end - i);
      if (lf === -1) {
        if (end > i) out.push(chunk.subarray(i, end));
        this.#pendingCr = len - end;
        break;
      }
      if (end === lf) {
        out.push(chunk.subarray(i, lf + 1));
      } else {
        if (end > i) out.push(chunk.subarray(i, end));
        out.push(LF_BUF);
      }
      this.#atLineStart = true;
      this.#lineLength = 0;
      i = lf + 1;
    }
    return Buffer.concat(out);
  }

  /** the end of the body: a final LF when the body lacked one, then `.\n` */
  end(): Buffer {
    if (this.#ended) throw new Error('BsmtpBodyEncoder: end called twice');
    this.#ended = true;
    const needLf = this.#pendingCr > 0 || !this.#atLineStart;
    this.#pendingCr = 0;
    return needLf ? Buffer.from('\n.\n') : Buffer.from(END_BUF);
  }
}

/** What a body becomes after a BSMTP round trip (the normalisation BsmtpBodyEncoder documents). */
export function normaliseBody(body: Uint8Array): Buffer {
  const out: Uint8Array[] = [];
  const len = body.length;
  let i = 0;
  while (i < len) {
    const lf = body.indexOf(LF, i);
    const stop = lf === -1 ? len : lf;
    let end = stop;
    while (end > i && body[end - 1] === CR) end--;
    out.push(body.subarray(i, end), LF_BUF);
    i = stop + 1;
  }
  return Buffer.concat(out);
}

/** One whole transaction in memory (small messages, tests): envelope, stuffed body, `.`. */
export function encodeBsmtp(envelope: BsmtpEnvelopeInit, body: Uint8Array): Buffer {
  const enc = new BsmtpBodyEncoder();
  return Buffer.concat([Buffer.from(formatBsmtpEnvelope(envelope)), enc.push(body), enc.end()]);
}

/**
 * A Transform for one transaction: its input is the message, its output the BSMTP
 * transaction (envelope lines, stuffed body, `.`). The envelope is checked when the
 * stream is made, so a bad one throws before any byte is written.
 */
export function createBsmtpStream(envelope: BsmtpEnvelopeInit, options: { helo?: string; quit?: boolean } = {}): Transform {
  const head = Buffer.from(heloLine(options.helo) + formatBsmtpEnvelope(envelope));
  const enc = new BsmtpBodyEncoder();
  let started = false;
  const start = (t: Transform): void => {
    if (!started) {
      started = true;
      t.push(head);
    }
  };
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      start(this);
      const out = enc.push(chunk);
      if (out.length > 0) this.push(out);
      callback();
    },
    flush(callback: TransformCallback) {
      start(this);
      this.push(enc.end());
      if (options.quit) this.push(Buffer.from('QUIT\n'));
      callback();
    },
  });
}

function heloLine(helo: string | undefined): string {
  if (helo === undefined) return '';
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(helo)) throw new InputError('bad-bsmtp', `bad HELO name ${JSON.stringify(helo)}`);
  return `HELO ${helo}\n`;
}

export interface BsmtpTransactionInit {
  envelope: BsmtpEnvelopeInit;
  /** the message: bytes, or chunks (sync or async) */
  body: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
}

/**
 * A whole batch as chunks: optional `HELO <name>`, each transaction, optional `QUIT`.
 * Every envelope is checked before its transaction is written.
 */
export async function* writeBsmtp(
  transactions: Iterable<BsmtpTransactionInit> | AsyncIterable<BsmtpTransactionInit>,
  options: { helo?: string; quit?: boolean } = {},
): AsyncGenerator<Buffer> {
  const helo = heloLine(options.helo);
  if (helo) yield Buffer.from(helo);
  for await (const t of transactions) {
    yield Buffer.from(formatBsmtpEnvelope(t.envelope));
    const enc = new BsmtpBodyEncoder();
    if (t.body instanceof Uint8Array) {
      yield enc.push(t.body);
    } else {
      for await (const chunk of t.body) {
        const out = enc.push(chunk);
        if (out.length > 0) yield out;
      }
    }
    yield enc.end();
  }
  if (options.quit) yield Buffer.from('QUIT\n');
}
