// Bag writer: job files → tar (plain ustar entries only, encoded here: every header is
// the same but for name, size and checksum) → compressor → bytes, with the SHA-256 of
// the compressed bytes computed on the way out (a bag is named by it). Every stage is
// pulled with backpressure, so memory does not grow with job or bag size.
// The output is deterministic: the same jobs, codec and level give the same bytes and
// so the same name (fixed mtime, owner and mode).

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { PassThrough, Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LIMITS } from '../limits.js';
import { createCompressor, type BagCodec, type CodecThread } from './codec.js';
import { BagError } from './errors.js';
import { isValidEntryName, showName } from './names.js';

/** One job file to put in a bag. `open()` is called once, when its turn comes. */
export interface BagJob {
  /** the entry name: a job file name (see isValidEntryName) */
  name: string;
  /** exact byte count open() will give */
  size: number;
  open(): Readable | AsyncIterable<Uint8Array> | Promise<Readable | AsyncIterable<Uint8Array>>;
  /**
   * the job's file, when it is one: a job of at most SMALL_READ bytes is then read whole
   * with one read (a few ahead of their turn) instead of through open()'s stream
   */
  path?: string;
}

export interface WriteBagOptions {
  /** default 'br' */
  codec?: BagCodec;
  /** brotli quality (default 5) or gzip level (default 6) */
  level?: number;
  /** refuse a job larger than this (default LIMITS.maxJobSizeCeiling) */
  maxEntrySize?: number;
  /** the bag's expanded size, for the compressor; computed when `jobs` is an array */
  sizeHint?: number;
  /** where the compressor runs (default 'caller': see lib/bag/stepped.ts) */
  thread?: CodecThread;
  /**
   * read small job files (with `path`) with synchronous calls, each straight into the
   * chunk being gathered, when its turn comes (no read-ahead). For a thread of its own,
   * the bag worker: about a third of the CPU of the thread pool's open/read/close round
   * trips, and no copy. The same bytes either way. (Default false.)
   */
  readSync?: boolean;
  signal?: AbortSignal;
}

export interface BagSummary {
  /** SHA-256 of the compressed bytes, lower-case hex: the bag's name */
  sha256: string;
  /** compressed bytes */
  size: number;
  /** decompressed (tar) bytes */
  expanded: number;
  /** job entries */
  entries: number;
  codec: BagCodec;
}

const BLOCK = 512;

/** tar bytes a bag of jobs with these sizes expands to: one header and padded data each, and the end blocks */
export function expandedSizeOf(sizes: Iterable<number>): number {
  let total = 2 * BLOCK;
  for (const s of sizes) total += BLOCK + Math.ceil(s / BLOCK) * BLOCK;
  return total;
}

/** Counts and hashes what passes through. */
class HashTap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/**
 * The tar stream goes to the compressor in chunks of at least this many bytes: each chunk
 * given to node:zlib is one round trip to its thread pool, and brotli at low qualities
 * packs small writes badly. Chunk boundaries depend on the jobs' bytes only, so a bag's
 * bytes stay deterministic.
 */
const CHUNK_BYTES = 256 * 1024;
/** a job file this small (with `path`) is read whole in one read instead of streamed */
export const SMALL_READ = 256 * 1024;
/** small jobs read ahead of their turn: at most this many … */
const READ_AHEAD = 16;
/** … holding at most this many bytes */
const READ_AHEAD_BYTES = 4 * 1024 * 1024;

const ZEROS = Buffer.alloc(2 * BLOCK);

function octal(buf: Buffer, value: number, offset: number, digits: number): void {
  buf.write(`${value.toString(8).padStart(digits, '0')} `, offset, 'latin1');
}

/**
 * The ustar header of a job entry (docs/bag.md): mode 0600, owner 0/0, mtime 0, no
 * user or group names, type '0'. Sizes over 8 GiB - 1 take GNU base-256 form.
 */
function entryHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeHeader(h, name, size);
  return h;
}

/** Write entryHeader's bytes into `h`, a zero-filled block. */
function writeHeader(h: Buffer, name: string, size: number): void {
  h.write(name, 0, 'latin1');
  octal(h, 0o600, 100, 6);
  octal(h, 0, 108, 6);
  octal(h, 0, 116, 6);
  if (size < 8 ** 11) octal(h, size, 124, 11);
  else {
    h[124] = 0x80;
    let n = size;
    for (let i = 135; i > 124; i--) {
      h[i] = n % 256;
      n = Math.floor(n / 256);
    }
  }
  octal(h, 0, 136, 11);
  h[156] = 0x30;
  h.write('ustar\u000000', 257, 'latin1');
  octal(h, 0, 329, 6);
  octal(h, 0, 337, 6);
  // checksum: every byte, with the checksum field itself counted as eight spaces
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += h[i]!;
  for (let i = 156; i < BLOCK; i++) sum += h[i]!;
  octal(h, sum, 148, 6);
}

/** Read up to `max` bytes of a file from its start into buf[off…]: one open, reads until EOF or `max`, one close. */
function readIntoSync(path: string, buf: Buffer, off: number, max: number): number {
  const fd = fs.openSync(path, 'r');
  try {
    let got = 0;
    while (got < max) {
      const n = fs.readSync(fd, buf, off + got, max - got, got);
      if (n === 0) break;
      got += n;
    }
    return got;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Where small job files read synchronously go: whole entries (header, data, padding) side
 * by side in one buffer, handed on as views (a new buffer when the next entry does not
 * fit; a view handed on is never written again).
 */
const FILL_BYTES = 1024 * 1024;

/** Read a small job file whole: one open, one read (two when it is exactly full), one close. */
function readWhole(path: string, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    fs.open(path, 'r', (err, fd) => {
      if (err) return reject(err);
      // one byte more than declared, to see a file that grew
      const buf = Buffer.allocUnsafe(size + 1);
      let got = 0;
      const finish = (e: Error | null): void => {
        fs.close(fd, (closeErr) => {
          const first = e ?? closeErr;
          if (first) reject(first);
          else resolve(buf.subarray(0, got));
        });
      };
      const step = (): void => {
        fs.read(fd, buf, got, buf.length - got, got, (e, n) => {
          if (e) return finish(e);
          got += n;
          if (n === 0 || got === buf.length) return finish(null);
          step();
        });
      };
      step();
    });
  });
}

interface Ahead {
  job: BagJob;
  /** the whole file, for a small job with a path */
  data?: Promise<Buffer>;
}

function checkJob(job: BagJob, seen: Set<string>, maxEntry: number): void {
  if (!isValidEntryName(job.name)) throw new BagError('bad-name', `refusing to put ${showName(job.name)} in a bag: not a job file name`, { entry: job.name });
  if (seen.has(job.name)) throw new BagError('duplicate', `job ${showName(job.name)} given twice`, { entry: job.name });
  seen.add(job.name);
  if (!Number.isSafeInteger(job.size) || job.size < 0) throw new BagError('size-mismatch', `job ${showName(job.name)}: bad size ${job.size}`, { entry: job.name });
  if (job.size > maxEntry) throw new BagError('entry-too-big', `job ${showName(job.name)} is ${job.size} bytes, over the cap of ${maxEntry}`, { entry: job.name });
}

function grew(job: BagJob): BagError {
  return new BagError('size-mismatch', `job ${showName(job.name)} grew past its declared ${job.size} bytes while being bagged`, { entry: job.name });
}

function shrank(job: BagJob, got: number): BagError {
  return new BagError('size-mismatch', `job ${showName(job.name)} gave ${got} bytes, not its declared ${job.size}`, { entry: job.name });
}

/**
 * The bag's tar stream, in chunks of at least CHUNK_BYTES (the last may be shorter).
 * Small job files are read whole, up to READ_AHEAD of them (READ_AHEAD_BYTES) ahead of
 * their turn, so their reads overlap the compressor; larger ones are streamed. Memory:
 * the read-ahead, one chunk being gathered and what the consumer holds.
 */
async function* tarChunks(jobs: AsyncIterable<BagJob> | Iterable<BagJob>, options: WriteBagOptions, counts: { entries: number; expanded: number }): AsyncGenerator<Buffer> {
  const maxEntry = options.maxEntrySize ?? LIMITS.maxJobSizeCeiling;
  const seen = new Set<string>();
  const it: AsyncIterator<BagJob> | Iterator<BagJob> = Symbol.asyncIterator in jobs ? (jobs as AsyncIterable<BagJob>)[Symbol.asyncIterator]() : (jobs as Iterable<BagJob>)[Symbol.iterator]();
  const ahead: Ahead[] = [];
  let aheadBytes = 0;
  let exhausted = false;
  let parts: Buffer[] = [];
  let bytes = 0;
  const add = (b: Buffer): void => {
    parts.push(b);
    bytes += b.length;
  };
  const readSync = options.readSync === true;
  let into = Buffer.alloc(0);
  let intoAt = 0;
  /** a small job's whole entry read into `into`, added as a view (joined to the view before it when adjacent) */
  const addSync = (job: BagJob & { path: string }): void => {
    const pad = (BLOCK - (job.size % BLOCK)) % BLOCK;
    // room for one byte more than declared, to see a file that grew
    const need = BLOCK + job.size + Math.max(pad, 1);
    if (into.length - intoAt < need) {
      into = Buffer.allocUnsafe(Math.max(FILL_BYTES, need));
      intoAt = 0;
    }
    const start = intoAt;
    into.fill(0, start, start + BLOCK);
    writeHeader(into.subarray(start, start + BLOCK), job.name, job.size);
    const got = readIntoSync(job.path, into, start + BLOCK, job.size + 1);
    if (got > job.size) throw grew(job);
    if (got < job.size) throw shrank(job, got);
    const end = start + BLOCK + job.size + pad;
    if (pad) into.fill(0, start + BLOCK + job.size, end);
    intoAt = end;
    const last = parts[parts.length - 1];
    if (last !== undefined && last.buffer === into.buffer && last.byteOffset + last.length === into.byteOffset + start) {
      parts[parts.length - 1] = into.subarray(last.byteOffset - into.byteOffset, end);
      bytes += end - start;
    } else add(into.subarray(start, end));
  };
  const take = (): Buffer => {
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
    parts = [];
    bytes = 0;
    return out;
  };
  /** pull jobs into the read-ahead window; reads of small ones start now */
  const fill = async (): Promise<void> => {
    while (!exhausted && ahead.length < READ_AHEAD && aheadBytes < READ_AHEAD_BYTES) {
      const r = await it.next();
      if (r.done) {
        exhausted = true;
        break;
      }
      const job = r.value;
      checkJob(job, seen, maxEntry);
      const entry: Ahead = { job };
      if (job.path !== undefined && job.size <= SMALL_READ && !readSync) {
        entry.data = readWhole(job.path, job.size);
        // observed when its turn comes; a failure meanwhile must not be "unhandled"
        entry.data.catch(() => {});
        aheadBytes += job.size;
      }
      ahead.push(entry);
    }
  };
  try {
    for (;;) {
      await fill();
      const next = ahead.shift();
      if (!next) break;
      options.signal?.throwIfAborted();
      const { job } = next;
      if (readSync && job.path !== undefined && job.size <= SMALL_READ) {
        addSync(job as BagJob & { path: string });
        counts.entries++;
        counts.expanded += BLOCK + job.size + ((BLOCK - (job.size % BLOCK)) % BLOCK);
        if (bytes >= CHUNK_BYTES) yield take();
        continue;
      }
      add(entryHeader(job.name, job.size));
      if (next.data) {
        const data = await next.data;
        aheadBytes -= job.size;
        if (data.length > job.size) throw grew(job);
        if (data.length < job.size) throw shrank(job, data.length);
        add(data);
      } else {
        let written = 0;
        const source = await job.open();
        try {
          for await (const chunk of source as AsyncIterable<Uint8Array>) {
            written += chunk.length;
            if (written > job.size) throw grew(job);
            add(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            if (bytes >= CHUNK_BYTES) yield take();
            options.signal?.throwIfAborted();
          }
        } finally {
          (source as Readable).destroy?.();
        }
        if (written !== job.size) throw shrank(job, written);
      }
      const pad = (BLOCK - (job.size % BLOCK)) % BLOCK;
      if (pad) add(ZEROS.subarray(0, pad));
      counts.entries++;
      counts.expanded += BLOCK + job.size + pad;
      if (bytes >= CHUNK_BYTES) yield take();
    }
    add(ZEROS);
    counts.expanded += 2 * BLOCK;
    yield take();
  } finally {
    // give back an iterator we stopped early (an async generator of jobs, say)
    if (!exhausted) await it.return?.();
  }
}

/**
 * A bag as a readable stream of compressed bytes, and its summary (hash, sizes) once
 * the stream has been read to the end. Errors (a bad name, a job that changed size)
 * destroy the stream and reject the summary with a BagError.
 */
export function bagStream(jobs: AsyncIterable<BagJob> | Iterable<BagJob>, options: WriteBagOptions = {}): { stream: Readable; summary: Promise<BagSummary> } {
  const codec = options.codec ?? 'br';
  const sizeHint = options.sizeHint ?? (Array.isArray(jobs) ? expandedSizeOf((jobs as BagJob[]).map((j) => j.size)) : undefined);
  const compressor = createCompressor(codec, {
    ...(options.level === undefined ? {} : { level: options.level }),
    ...(sizeHint === undefined ? {} : { sizeHint }),
    ...(options.thread === undefined ? {} : { thread: options.thread }),
  });
  const tap = new HashTap();
  const out = new PassThrough();
  const counts = { entries: 0, expanded: 0 };
  let fillError: unknown;
  const source = Readable.from(
    (async function* () {
      try {
        yield* tarChunks(jobs, options, counts);
      } catch (err) {
        fillError = err;
        throw err;
      }
    })(),
    { objectMode: false, highWaterMark: 1 },
  );
  const summary = pipeline(source, compressor, tap, out).then(
    (): BagSummary => ({ sha256: tap.hash.digest('hex'), size: tap.bytes, expanded: counts.expanded, entries: counts.entries, codec }),
    (err: unknown) => {
      // the filler's error says what was wrong (a bad name, a job that changed, a job
      // file that could not be read); the pipeline's is then only its echo
      const first = fillError ?? err;
      if (!out.destroyed) out.destroy(first as Error);
      throw first;
    },
  );
  summary.catch(() => {});
  return { stream: out, summary };
}

/** Write a bag to `dest` (a file, usually: the bag is offered by hash and size after). Resolves after `dest` finished. */
export async function writeBag(jobs: AsyncIterable<BagJob> | Iterable<BagJob>, dest: Writable, options: WriteBagOptions = {}): Promise<BagSummary> {
  const { stream, summary } = bagStream(jobs, options);
  const piping = pipeline(stream, dest);
  try {
    await piping;
  } catch (err) {
    // a bad bag is reported as such, not as the broken pipe it caused; a failing
    // destination (ENOSPC) as itself
    const reason = await summary.then(() => undefined, (e: unknown) => e);
    throw reason instanceof BagError ? reason : err;
  }
  return summary;
}

