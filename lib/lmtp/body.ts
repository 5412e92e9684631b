// The message of an LMTP DATA (dots already unstuffed by smtp-server, CRLF line ends)
// turned into the body of a BSMTP job: LF line ends, a "." added to every line that
// starts with "." (headers included), and the final "." line. A push transform fed
// chunk by chunk, so memory does not depend on the message size. Pure.

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const LF_BUF = Buffer.from('\n');
const CR_BUF = Buffer.from('\r');
const DOT_BUF = Buffer.from('.');

export class BsmtpBodyEncoder {
  private atLineStart = true;
  /** the previous chunk ended in CR: it is a line end if this chunk starts with LF */
  private pendingCR = false;
  /** bytes of message text seen (before conversion) */
  bytesIn = 0;

  /** Convert one chunk; returns the bytes to append to the job (possibly empty). */
  push(chunk: Buffer): Buffer {
    this.bytesIn += chunk.length;
    const out: Buffer[] = [];
    let i = 0;
    const len = chunk.length;
    if (this.pendingCR && len > 0) {
      this.pendingCR = false;
      if (chunk[0] === LF) {
        out.push(LF_BUF);
        i = 1;
        this.atLineStart = true;
      } else {
        // a bare CR is message content: keep it
        out.push(CR_BUF);
        this.atLineStart = false;
      }
    }
    while (i < len) {
      if (this.atLineStart && chunk[i] === DOT) out.push(DOT_BUF);
      this.atLineStart = false;
      const nl = chunk.indexOf(LF, i);
      if (nl < 0) {
        if (chunk[len - 1] === CR) {
          this.pendingCR = true;
          out.push(chunk.subarray(i, len - 1));
        } else {
          out.push(chunk.subarray(i, len));
        }
        break;
      }
      const end = nl > i && chunk[nl - 1] === CR ? nl - 1 : nl;
      out.push(chunk.subarray(i, end), LF_BUF);
      i = nl + 1;
      this.atLineStart = true;
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** The rest after the last chunk: a held CR, a missing final line end, and the "." line. */
  end(): Buffer {
    let tail = '';
    if (this.pendingCR) {
      tail += '\r';
      this.pendingCR = false;
      this.atLineStart = false;
    }
    if (!this.atLineStart) tail += '\n';
    this.atLineStart = true;
    return Buffer.from(`${tail}.\n`);
  }
}
