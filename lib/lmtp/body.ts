// The BSMTP body of an LMTP message, made from smtp-server's DATA stream (CRLF lines,
// dots already unstuffed): the same bytes as lib/bsmtp/writer.ts's BsmtpBodyEncoder —
// every run of CRs just before an LF dropped (CRLF → LF), a CR anywhere else kept, a dot
// added before every line that begins with one, an LF added to a body that lacks it, then
// `.\n` — but each chunk is written into one output buffer with one copy per line,
// instead of a view per line joined by Buffer.concat (the listener's hottest loop after
// smtp-server's own). The output buffer is sized to the chunk (plus CRs held back and a
// little room for added dots) and grows only for a chunk with more dot lines than CRs
// dropped: external memory V8 is told about drives its full collections, and a buffer
// twice the chunk's size made them six times as frequent. A line that comes out longer
// than LIMITS.maxBsmtpTextLine (what the peer's BSMTP reader takes; an added dot counted,
// the LF not) sets `lineTooLong`: the listener refuses the message rather than queue a
// job the peer would fail (review8b). It does not throw: the DATA stream must drain.

import { LIMITS } from '../limits.js';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
/** lines shorter than this are copied byte by byte (cheaper than a native call) */
const SHORT_LINE = 64;
/** room for added dots before the output buffer has to grow */
const SLACK = 16;

export class LmtpBodyEncoder {
  private atLineStart = true;
  private pendingCr = 0;
  private ended = false;
  /** bytes written of the current output line */
  private lineLength = 0;
  /** a line came out longer than maxLine */
  lineTooLong = false;

  constructor(private readonly maxLine: number = LIMITS.maxBsmtpTextLine) {}

  push(chunk: Uint8Array): Buffer {
    if (this.ended) throw new Error('LmtpBodyEncoder: push after end');
    const len = chunk.length;
    if (len === 0) return Buffer.alloc(0);
    let i = 0;
    if (this.pendingCr > 0) {
      let k = 0;
      while (k < len && chunk[k] === CR) k++;
      if (k === len) {
        this.pendingCr += len;
        return Buffer.alloc(0);
      }
    }
    // the CRs held back and the chunk: every line's LF replaces it or a CR dropped, so only
    // added dots make the output longer than that
    let out = Buffer.allocUnsafe(this.pendingCr + len + SLACK);
    let o = 0;
    if (this.pendingCr > 0) {
      let k = 0;
      while (chunk[k] === CR) k++;
      if (chunk[k] === LF) {
        out[o++] = LF;
        this.atLineStart = true;
        this.lineLength = 0;
        i = k + 1;
      } else {
        out.fill(CR, 0, this.pendingCr);
        o = this.pendingCr;
        this.atLineStart = false;
        this.lineLength += this.pendingCr;
      }
      this.pendingCr = 0;
    }
    const src = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (i < len) {
      if (this.atLineStart && src[i] === DOT) {
        // room for the dot and the rest of the chunk as it is
        if (o + 1 + (len - i) > out.length) {
          const bigger = Buffer.allocUnsafe(o + 1 + (len - i) + SLACK + (len >> 4));
          out.copy(bigger, 0, 0, o);
          out = bigger;
        }
        out[o++] = DOT;
        this.lineLength++;
      }
      this.atLineStart = false;
      const lf = src.indexOf(LF, i);
      const stop = lf === -1 ? len : lf;
      let end = stop;
      while (end > i && src[end - 1] === CR) end--;
      if (end - i < SHORT_LINE) {
        for (let j = i; j < end; j++) out[o++] = src[j]!;
      } else {
        o += src.copy(out, o, i, end);
      }
      this.lineLength += end - i;
      if (this.lineLength > this.maxLine) this.lineTooLong = true;
      if (lf === -1) {
        this.pendingCr = len - end;
        break;
      }
      out[o++] = LF;
      this.atLineStart = true;
      this.lineLength = 0;
      i = lf + 1;
    }
    return out.subarray(0, o);
  }

  /** the end of the body: a final LF when the body lacked one, then `.\n` */
  end(): Buffer {
    if (this.ended) throw new Error('LmtpBodyEncoder: end called twice');
    this.ended = true;
    const needLf = this.pendingCr > 0 || !this.atLineStart;
    this.pendingCr = 0;
    return Buffer.from(needLf ? '\n.\n' : '.\n', 'latin1');
  }
}
