// What a delivery method delivers: transactions (sender, ESMTP parameters, recipients)
// whose message text is a byte range of a job file, opened fresh for every attempt so
// memory never grows with message size. Line transforms (dot-stuffing both ways, LF to
// CRLF) are streaming Transforms that carry their line state across chunk borders.

import { isAscii } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';

export interface Recipient {
  address: string;
  /** ESMTP RCPT parameters as written (`NOTIFY=SUCCESS,FAILURE`, `ORCPT=rfc822;a@b`) */
  params: string[];
}

/** Where the message text of a transaction is. */
export interface BodySource {
  path: string;
  /** first byte (inclusive) */
  start: number;
  /** end (exclusive); undefined = to end of file */
  end: number | undefined;
  /** true when the bytes are dot-stuffed BSMTP DATA (a leading `.` doubled) */
  stuffed: boolean;
  /** the bytes themselves instead of a file range (notices we compose) */
  buffer?: Buffer;
}

export interface Transaction {
  /** position in its job, 0-based: per-transaction progress is keyed by it */
  index: number;
  /** '' = the null sender */
  sender: string;
  /** ESMTP MAIL parameters as written (`RET=HDRS`, `ENVID=x`, `BODY=8BITMIME`, `SIZE=…`) */
  mailParams: string[];
  recipients: Recipient[];
  body: BodySource;
  /** 1-based line of the MAIL command in its BSMTP job (0 for rmail jobs) */
  line: number;
  /**
   * an rmail job: no sender declared the body's type, so the SMTP and LMTP methods
   * declare BODY=8BITMIME (RFC 6152) when its bytes have any over 127
   */
  bodyUndeclared?: boolean;
}

/** Whether the message bytes have any over 127 (read in chunks, memory bounded). */
export async function hasEightBit(body: BodySource): Promise<boolean> {
  for await (const chunk of openRaw(body) as AsyncIterable<Buffer>) {
    if (!isAscii(chunk)) return true;
  }
  return false;
}

/** Open the message bytes as they are stored. */
export function openRaw(body: BodySource): Readable {
  if (body.buffer) return Readable.from([body.buffer]);
  if (body.end !== undefined && body.end <= body.start) {
    return Readable.from([]);
  }
  return createReadStream(body.path, { start: body.start, ...(body.end !== undefined ? { end: body.end - 1 } : {}) });
}

const DOT = 0x2e;
const CR = 13;
const LF_BUF = Buffer.from('\n');
const CRLF_BUF = Buffer.from('\r\n');
const DOT_BUF = Buffer.from('.');

/**
 * A transform applied line by line; `line` gets each complete line without its LF and
 * pushes the pieces of its output onto `out` (slices, not copies: one concat per chunk).
 */
abstract class LineTransform extends Transform {
  private rest: Buffer = Buffer.alloc(0);
  protected abstract line(line: Buffer, hasLf: boolean, out: Buffer[]): void;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const data = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    let start = 0;
    const out: Buffer[] = [];
    for (let i = data.indexOf(10, start); i >= 0; i = data.indexOf(10, start)) {
      this.line(data.subarray(start, i), true, out);
      start = i + 1;
    }
    this.rest = Buffer.from(data.subarray(start));
    if (out.length > 0) this.push(Buffer.concat(out));
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.rest.length > 0) {
      const out: Buffer[] = [];
      this.line(this.rest, false, out);
      this.push(Buffer.concat(out));
    }
    cb();
  }
}

/** Stuffed → plain: remove one leading `.` from lines that start with one. */
export class DotUnstuff extends LineTransform {
  protected line(line: Buffer, hasLf: boolean, out: Buffer[]): void {
    out.push(line.length > 0 && line[0] === DOT ? line.subarray(1) : line);
    if (hasLf) out.push(LF_BUF);
  }
}

/**
 * To SMTP DATA: CRLF line ends (the CRs before an LF are taken off, a bare CR goes
 * out as a space: no bare CR or LF goes out), a leading `.` doubled unless the input is already stuffed, and a final
 * line end added when the text lacks one. The caller writes the `.` line itself.
 */
export class ToSmtpData extends LineTransform {
  constructor(private readonly alreadyStuffed: boolean) {
    super();
  }

  protected line(line: Buffer, _hasLf: boolean, out: Buffer[]): void {
    // every CR of a run before the line end goes (docs/formats.md, rule 1)
    let end = line.length;
    while (end > 0 && line[end - 1] === CR) end--;
    let l = line.subarray(0, end);
    // a bare CR inside a line would be read as a line end by some servers: it goes out as
    // a space, which is what Postfix's own sendmail makes of it (docs/formats.md, "End to
    // end"), so a job reads the same through `sendmail` and `sendmail -bs`
    if (l.includes(CR)) l = Buffer.from(l.toString('latin1').replace(/\r/g, ' '), 'latin1');
    if (!this.alreadyStuffed && l.length > 0 && l[0] === DOT) out.push(DOT_BUF);
    out.push(l, CRLF_BUF);
  }
}

/** Plain message text (LF) as a stream, whatever the job stored. */
export function openPlain(body: BodySource): Readable {
  const raw = openRaw(body);
  return body.stuffed ? through(raw, new DotUnstuff()) : raw;
}

/** Message text as SMTP DATA (CRLF, stuffed, ending in CRLF; no final `.`). */
export function openSmtpData(body: BodySource): Readable {
  return through(openRaw(body), new ToSmtpData(body.stuffed));
}

/**
 * `raw` piped into `t`, with raw's error passed on (a pipe does not: the reader of `t`
 * would wait for ever and the error would have no listener), and raw closed with `t`.
 */
function through(raw: Readable, t: Transform): Readable {
  raw.once('error', (err) => t.destroy(err));
  t.once('close', () => raw.destroy());
  return raw.pipe(t);
}

/** Read the first `max` bytes of the plain message (for notices); `complete` says if that was all. */
export async function readPlainPrefix(body: BodySource, max: number): Promise<{ bytes: Buffer; complete: boolean }> {
  const chunks: Buffer[] = [];
  let n = 0;
  const s = openPlain(body);
  try {
    for await (const c of s as AsyncIterable<Buffer>) {
      chunks.push(c);
      n += c.length;
      if (n > max) {
        return { bytes: Buffer.concat(chunks).subarray(0, max), complete: false };
      }
    }
  } finally {
    s.destroy();
  }
  return { bytes: Buffer.concat(chunks), complete: true };
}

/** Decode RFC 3461 xtext (`+2B` → `+`). */
export function xtextDecode(s: string): string {
  return s.replace(/\+([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** The value of an ESMTP parameter (`RET=HDRS` → `HDRS`), case-insensitive keyword. */
export function paramValue(params: string[], keyword: string): string | undefined {
  const k = keyword.toUpperCase() + '=';
  const p = params.find((x) => x.toUpperCase().startsWith(k));
  return p === undefined ? undefined : p.slice(k.length);
}
