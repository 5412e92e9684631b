// A bag written into a file descriptor, and errors carried between threads. Both paths of
// writeBagFile (lib/bag/workers.ts) run this: on the calling thread, or in a bag worker
// thread (lib/bag/bag-worker.ts) given the descriptor the caller opened. The same code on
// the same jobs gives the same bytes either way.

import fs from 'node:fs';
import { Writable } from 'node:stream';
import { MailbagError } from '../errors.js';
import type { ErrorCode } from '../exit.js';
import { BagError, type BagIssue } from './errors.js';
import { writeBag, type BagJob, type BagSummary, type WriteBagOptions } from './writer.js';

/** One job file for writeBagFile: its entry name, exact size, and where it is. */
export interface BagFileJob {
  name: string;
  size: number;
  path: string;
}

/** what a worker is told about a bag: everything in WriteBagOptions that can cross threads */
export type PlainBagOptions = Pick<WriteBagOptions, 'codec' | 'level' | 'maxEntrySize' | 'sizeHint' | 'thread'>;

/** job files read in streams of this many bytes (those over SMALL_READ; the session's value) */
const READ_CHUNK = 256 * 1024;

/**
 * Writes into a descriptor it does not own, at increasing offsets from 0, one write
 * (or writev) at a time. `idle()` settles when no write is in flight: the descriptor may
 * be closed after it, and no late write can land in a file that reused its number.
 */
class FdSink extends Writable {
  private position = 0;
  private inflight: Promise<void> = Promise.resolve();

  constructor(private readonly fd: number) {
    super({ highWaterMark: 256 * 1024 });
  }

  idle(): Promise<void> {
    return this.inflight;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.track(this.writeAll([chunk]), cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.track(this.writeAll(chunks.map((c) => c.chunk)), cb);
  }

  private track(p: Promise<void>, cb: (err?: Error | null) => void): void {
    this.inflight = p.then(
      () => cb(),
      (err: Error) => cb(err),
    );
  }

  private async writeAll(chunks: Buffer[]): Promise<void> {
    const bufs = chunks.filter((c) => c.length > 0);
    while (bufs.length > 0) {
      const n = await new Promise<number>((resolve, reject) => {
        fs.writev(this.fd, bufs, this.position, (err, written) => (err ? reject(err) : resolve(written)));
      });
      this.position += n;
      // a short write: go on from the first byte not written
      let skip = n;
      while (bufs.length > 0 && skip >= bufs[0]!.length) skip -= bufs.shift()!.length;
      if (skip > 0) bufs[0] = bufs[0]!.subarray(skip);
    }
  }
}

/** The BagJobs of writeBagFile's plain jobs: small ones read whole by path, larger ones streamed. */
export function fileJobs(jobs: readonly BagFileJob[]): BagJob[] {
  return jobs.map((j) => ({ name: j.name, size: j.size, path: j.path, open: () => fs.createReadStream(j.path, { highWaterMark: READ_CHUNK }) }));
}

/**
 * Write a bag of these job files into `fd` from offset 0 (the descriptor is neither
 * synced nor closed). Settles only when no write into `fd` is in flight.
 */
export async function writeBagToFd(jobs: readonly BagFileJob[], fd: number, options: WriteBagOptions): Promise<BagSummary> {
  const sink = new FdSink(fd);
  try {
    return await writeBag(fileJobs(jobs), sink, options);
  } finally {
    await sink.idle();
  }
}

/** An error as it crosses from a worker to the caller: enough to make it again, same class, code and message. */
export type WireError =
  | { kind: 'bag'; issue: BagIssue; message: string; entry?: string }
  | { kind: 'mailbag'; code: ErrorCode; message: string }
  | { kind: 'abort' }
  | { kind: 'error'; name: string; message: string; code?: string; errno?: number; syscall?: string; path?: string };

export function errorToWire(err: unknown, signal?: AbortSignal): WireError {
  if (signal?.aborted && err === signal.reason) return { kind: 'abort' };
  if (err instanceof BagError) return { kind: 'bag', issue: err.issue, message: err.message, ...(err.entry === undefined ? {} : { entry: err.entry }) };
  if (err instanceof MailbagError) return { kind: 'mailbag', code: err.code, message: err.message };
  if (!(err instanceof Error)) return { kind: 'error', name: 'Error', message: String(err) };
  const e = err as NodeJS.ErrnoException;
  return {
    kind: 'error',
    name: e.name,
    message: e.message,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.errno === 'number' ? { errno: e.errno } : {}),
    ...(typeof e.syscall === 'string' ? { syscall: e.syscall } : {}),
    ...(typeof e.path === 'string' ? { path: e.path } : {}),
  };
}

const CLASSES: Record<string, new (message: string) => Error> = { TypeError, RangeError, SyntaxError };

/** The error again, on this side; `abortReason` for one the caller's abort caused. */
export function errorFromWire(w: WireError, abortReason: () => unknown): unknown {
  switch (w.kind) {
    case 'bag':
      return new BagError(w.issue, w.message, w.entry === undefined ? {} : { entry: w.entry });
    case 'mailbag':
      return new MailbagError(w.code, w.message);
    case 'abort':
      return abortReason();
    case 'error': {
      const e = new (CLASSES[w.name] ?? Error)(w.message) as NodeJS.ErrnoException;
      if (!(w.name in CLASSES) && w.name !== 'Error') e.name = w.name;
      if (w.code !== undefined) e.code = w.code;
      if (w.errno !== undefined) e.errno = w.errno;
      if (w.syscall !== undefined) e.syscall = w.syscall;
      if (w.path !== undefined) e.path = w.path;
      return e;
    }
  }
}
