// Bag writer: job files → tar (plain ustar entries only) → compressor → bytes, with the
// SHA-256 of the compressed bytes computed on the way out (a bag is named by it). Every
// stage is a stream with backpressure, so memory does not grow with job or bag size.
// The output is deterministic: the same jobs, codec and level give the same bytes and
// so the same name (fixed mtime, owner and mode).

import { createHash } from 'node:crypto';
import { PassThrough, Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { LIMITS } from '../limits.js';
import { createCompressor, type BagCodec } from './codec.js';
import { BagError } from './errors.js';
import { isValidEntryName, showName } from './names.js';

/** One job file to put in a bag. `open()` is called once, when its turn comes. */
export interface BagJob {
  /** the entry name: a job file name (see isValidEntryName) */
  name: string;
  /** exact byte count open() will give */
  size: number;
  open(): Readable | AsyncIterable<Uint8Array> | Promise<Readable | AsyncIterable<Uint8Array>>;
}

export interface WriteBagOptions {
  /** default 'br' */
  codec?: BagCodec;
  /** brotli quality (default 4) or gzip level (default 6) */
  level?: number;
  /** refuse a job larger than this (default LIMITS.maxJobSizeCeiling) */
  maxEntrySize?: number;
  /** the bag's expanded size, for the compressor; computed when `jobs` is an array */
  sizeHint?: number;
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
/** the fixed mtime of every entry, so a bag's bytes depend on its jobs only */
const EPOCH = new Date(0);

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
 * Gathers the tar stream's small pieces (512-byte headers, padding, short messages)
 * into chunks of at least 64 KiB: each chunk given to node:zlib is one round trip to
 * its thread pool, and brotli at low qualities packs tiny chunks badly.
 */
class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= COALESCE_BYTES) this.flushParts();
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.flushParts();
    cb();
  }
  private flushParts(): void {
    if (this.bytes === 0) return;
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.bytes));
    this.parts = [];
    this.bytes = 0;
  }
}

const COALESCE_BYTES = 64 * 1024;

/** The bag's output was closed under the filler (the reader went away, the disk filled). */
class OutputClosed extends Error {
  constructor() {
    super('the bag stream was closed before the bag was complete');
  }
}

/** Wait until `w` takes more; reject when it was or gets destroyed instead. */
function waitDrain(w: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const state = w as unknown as { destroyed?: boolean; destroying?: boolean };
    if (state.destroyed || state.destroying) return reject(new OutputClosed());
    const cleanup = (): void => {
      w.off('drain', onDrain);
      w.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new OutputClosed());
    };
    w.once('drain', onDrain);
    w.once('close', onClose);
  });
}

async function fillPack(pack: tar.Pack, jobs: AsyncIterable<BagJob> | Iterable<BagJob>, options: WriteBagOptions, counts: { entries: number; expanded: number }): Promise<void> {
  const maxEntry = options.maxEntrySize ?? LIMITS.maxJobSizeCeiling;
  const seen = new Set<string>();
  for await (const job of jobs) {
    options.signal?.throwIfAborted();
    if (!isValidEntryName(job.name)) throw new BagError('bad-name', `refusing to put ${showName(job.name)} in a bag: not a job file name`, { entry: job.name });
    if (seen.has(job.name)) throw new BagError('duplicate', `job ${showName(job.name)} given twice`, { entry: job.name });
    seen.add(job.name);
    if (!Number.isSafeInteger(job.size) || job.size < 0) throw new BagError('size-mismatch', `job ${showName(job.name)}: bad size ${job.size}`, { entry: job.name });
    if (job.size > maxEntry) throw new BagError('entry-too-big', `job ${showName(job.name)} is ${job.size} bytes, over the cap of ${maxEntry}`, { entry: job.name });

    let settle!: (err?: Error | null) => void;
    const entryDone = new Promise<void>((res, rej) => (settle = (err) => (err ? rej(err) : res())));
    const sink = pack.entry({ name: job.name, size: job.size, type: 'file', mode: 0o600, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '' }, (err) => settle(err));
    // the sink's errors reach the caller through entryDone and the filler's own throw
    sink.on('error', () => {});
    entryDone.catch(() => {});
    let written = 0;
    const source = await job.open();
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array>) {
        written += chunk.length;
        if (written > job.size) throw new BagError('size-mismatch', `job ${showName(job.name)} grew past its declared ${job.size} bytes while being bagged`, { entry: job.name });
        if (!sink.write(chunk)) await waitDrain(sink as unknown as NodeJS.EventEmitter);
        options.signal?.throwIfAborted();
      }
    } catch (err) {
      (source as Readable).destroy?.();
      sink.destroy(err as Error);
      throw err;
    }
    if (written !== job.size) {
      sink.destroy(new Error('size mismatch'));
      throw new BagError('size-mismatch', `job ${showName(job.name)} gave ${written} bytes, not its declared ${job.size}`, { entry: job.name });
    }
    (sink as unknown as { end(): void }).end();
    await entryDone;
    counts.entries++;
    counts.expanded += BLOCK + Math.ceil(job.size / BLOCK) * BLOCK;
  }
  pack.finalize();
  counts.expanded += 2 * BLOCK;
}

/**
 * A bag as a readable stream of compressed bytes, and its summary (hash, sizes) once
 * the stream has been read to the end. Errors (a bad name, a job that changed size)
 * destroy the stream and reject the summary with a BagError.
 */
export function bagStream(jobs: AsyncIterable<BagJob> | Iterable<BagJob>, options: WriteBagOptions = {}): { stream: Readable; summary: Promise<BagSummary> } {
  const codec = options.codec ?? 'br';
  const pack = tar.pack();
  // pack errors are the filler's, reported through `summary`
  pack.on('error', () => {});
  const sizeHint = options.sizeHint ?? (Array.isArray(jobs) ? expandedSizeOf((jobs as BagJob[]).map((j) => j.size)) : undefined);
  const compressor = createCompressor(codec, {
    ...(options.level === undefined ? {} : { level: options.level }),
    ...(sizeHint === undefined ? {} : { sizeHint }),
  });
  const tap = new HashTap();
  const out = new PassThrough();
  const counts = { entries: 0, expanded: 0 };

  const filling = fillPack(pack, jobs, options, counts).catch((err: unknown) => {
    pack.destroy(err as Error);
    throw err;
  });
  const flowing = pipeline(Readable.from(pack as AsyncIterable<Buffer>), new Coalesce(), compressor, tap, out);
  const summary = Promise.all([filling, flowing]).then(
    (): BagSummary => ({ sha256: tap.hash.digest('hex'), size: tap.bytes, expanded: counts.expanded, entries: counts.entries, codec }),
    async (err: unknown) => {
      // the filler's error says what was wrong (a bad name, a job that changed, a job
      // file that could not be read); the pipeline's is then only its echo — unless the
      // filler merely noticed that the output had gone away
      const fillError = await filling.then(() => undefined, (e: unknown) => e);
      const first = fillError !== undefined && !(fillError instanceof OutputClosed) ? fillError : err;
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

