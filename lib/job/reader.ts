// Reading a job from a stream of chunks (a file, a bag entry) with bounded memory: the
// header is collected up to its cap (LIMITS.maxJobHeader) and decoded; the payload is
// handed on chunk by chunk, never gathered. JobHeaderReader is the pure push parser;
// readJobStream wraps it around any async iterable of bytes.

import { MailbagError, type Result } from '../errors.js';
import { decodeJobHeader, MAX_JOB_PREFIX, type JobHeader, type JobIssueCode } from './header.js';

export type HeaderStep =
  | { done: false }
  | { done: true; header: JobHeader; /** payload bytes that came with the header's chunk */ rest: Buffer };

/** Push parser for the start of a job: feed chunks until it answers done (or an issue). */
export class JobHeaderReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private newlines = 0;
  private finished = false;

  push(chunk: Uint8Array): Result<HeaderStep, JobIssueCode> {
    if (this.finished) throw new Error('JobHeaderReader: push after the header was complete');
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.chunks.push(buf);
    this.size += buf.length;
    // the header is complete after the second LF; until then, decode only to catch a
    // wrong magic early (first chunk) or a header over its cap
    for (let i = buf.indexOf(0x0a); i !== -1 && this.newlines < 2; i = buf.indexOf(0x0a, i + 1)) this.newlines++;
    const first = this.chunks.length === 1;
    if (this.newlines < 2 && !first && this.size < MAX_JOB_PREFIX) return { ok: true, value: { done: false } };
    const all = this.chunks.length === 1 ? buf : Buffer.concat(this.chunks, this.size);
    this.chunks = [all];
    const r = decodeJobHeader(all);
    if (!r.ok) {
      if (r.issue.code === 'truncated') return { ok: true, value: { done: false } };
      this.finished = true;
      return r;
    }
    this.finished = true;
    this.chunks = [];
    return { ok: true, value: { done: true, header: r.value.header, rest: all.subarray(r.value.length) } };
  }

  /** The input ended: the issue to report when the header was not complete. */
  end(): Result<never, JobIssueCode> {
    const all = Buffer.concat(this.chunks, this.size);
    const r = decodeJobHeader(all);
    if (!r.ok) return r;
    return { ok: false, issue: { code: 'truncated', message: 'job ended before its header' } };
  }
}

export interface JobStream {
  header: JobHeader;
  /** the payload, streamed from where the header ended; iterate it once */
  payload: AsyncIterable<Buffer>;
}

/**
 * Read a job's header from a stream and return it with the rest of the stream as the
 * payload. Throws MailbagError 'bad-job' (naming `what`) when the header is refused.
 */
export async function readJobStream(source: AsyncIterable<Uint8Array>, what = 'job'): Promise<JobStream> {
  const it = source[Symbol.asyncIterator]();
  const reader = new JobHeaderReader();
  for (;;) {
    const next = await it.next();
    if (next.done) {
      const r = reader.end();
      throw new MailbagError('bad-job', `${what}: ${r.ok ? 'truncated' : r.issue.message}`);
    }
    const r = reader.push(next.value);
    if (!r.ok) {
      await it.return?.();
      throw new MailbagError('bad-job', `${what}: ${r.issue.message}`);
    }
    if (r.value.done) {
      const { header, rest } = r.value;
      async function* payload(): AsyncGenerator<Buffer> {
        if (rest.length > 0) yield rest;
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          const c = n.value;
          yield Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        }
      }
      return { header, payload: payload() };
    }
  }
}
