// lmtpd's log when several processes share it (lmtp.workers > 1: the primary and every
// worker write to the same stderr, often a pipe to syslog or journald). A write(2) of
// more than PIPE_BUF bytes to a pipe whose reader lags is taken in parts, and another
// process's write can land between two parts, in the middle of a line. So the text is
// cut at line ends into pieces of at most PIPE_BUF bytes, each written with its own
// write(2): a write of at most PIPE_BUF bytes to a pipe is whole or not at all (POSIX).
// A pipe that is full (EAGAIN: its descriptor is non-blocking, shared with Node's
// stderr) is tried again shortly, in order, and keeps the process until written; at an
// exit through process.exit what is left is written, waiting up to a bound. Memory is bounded: past MAX_QUEUED bytes waiting, lines are counted and
// dropped, and a line says how many once the reader takes the log again.

import { writeSync } from 'node:fs';

/** Linux's PIPE_BUF */
export const PIPE_BUF = 4096;
const MAX_QUEUED = 8 * 1024 * 1024;
const RETRY_MS = 5;

/** `text` (whole lines) cut at line ends into pieces of at most PIPE_BUF bytes; a longer line is a piece of its own (no writer can keep it whole in a pipe). */
export function pipePieces(text: string): Buffer[] {
  const b = Buffer.from(text);
  const out: Buffer[] = [];
  let start = 0;
  while (start < b.length) {
    if (b.length - start <= PIPE_BUF) {
      out.push(b.subarray(start));
      break;
    }
    // the last line end within PIPE_BUF bytes, or the end of an overlong line
    let end = b.lastIndexOf(10, start + PIPE_BUF - 1);
    if (end < start) end = b.indexOf(10, start + PIPE_BUF);
    if (end < 0) end = b.length - 1;
    out.push(b.subarray(start, end + 1));
    start = end + 1;
  }
  return out;
}

export class PipeLog {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly fd: number) {}

  write(text: string): void {
    for (const p of pipePieces(text)) {
      if (this.queued + p.length > MAX_QUEUED) {
        this.dropped += p.toString('latin1').split('\n').length - 1;
        continue;
      }
      this.queue.push(p);
      this.queued += p.length;
    }
    if (this.timer === undefined) this.pump();
  }

  /** Write what is waiting, waiting at most `ms` for a full pipe (at exit). */
  drainSync(ms = 2000): void {
    const deadline = Date.now() + ms;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    while (!this.pump() && Date.now() < deadline) Atomics.wait(nap, 0, 0, RETRY_MS);
  }

  /** Write in order until the pipe is full or nothing is left; true when nothing is left. */
  private pump(): boolean {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.queue.length > 0) {
      const p = this.queue[0]!;
      let n: number;
      try {
        n = writeSync(this.fd, p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          // (not unref'd: like Node's own pending writes, lines waiting keep the process
          // until they are written or it exits some other way, and then drainSync)
          this.timer = setTimeout(() => void this.pump(), RETRY_MS);
          return false;
        }
        // the log is gone (EPIPE: its reader exited): nothing can be written any more
        this.queue.length = 0;
        this.queued = 0;
        return true;
      }
      // (a piece of at most PIPE_BUF bytes to a pipe is written whole; a file may take less)
      if (n < p.length) {
        this.queue[0] = p.subarray(n);
        this.queued -= n;
        continue;
      }
      this.queue.shift();
      this.queued -= p.length;
      if (this.queue.length === 0 && this.dropped > 0) {
        const line = `${new Date().toISOString()} lmtpd: ${this.dropped} log line(s) dropped: the log's reader did not take them (more than ${MAX_QUEUED} bytes waiting)\n`;
        this.dropped = 0;
        this.queue.push(Buffer.from(line));
        this.queued += line.length;
      }
    }
    return true;
  }
}
