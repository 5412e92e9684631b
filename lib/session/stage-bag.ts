// The stager: one incoming bag read from its partial file as it grows (docs/protocol.md §5
// steps 1–2) — every byte through the SHA-256, decompressed, the tar and each job header
// validated, each new job written into `HASH.d/`. It runs on the stage worker thread
// (lib/session/stage-worker.ts; the session's thread only writes the partial and says how
// far it has grown, through shared memory) or, where no built worker exists, on the
// caller's thread (SessionStore.beginStage). Nothing here commits: the caller makes the
// staged jobs durable and writes the ledger line once `done` has settled with every byte
// hashed and found good. This module is loaded by the stage worker: it imports no more
// than the stager needs.

import { createHash } from 'node:crypto';
import fs, { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { readBag } from '../bag/reader.js';
import type { BagCodec } from '../bag/codec.js';
import { BagError } from '../bag/errors.js';
import { MailbagError, SpoolError } from '../errors.js';
import { encodeJobHeader, type JobHeader } from '../job/header.js';
import { JobHeaderReader, readJobStream } from '../job/reader.js';
import { faultPoint } from '../spool/fault.js';
import { YoungGcPacer } from '../memory.js';

/** Refusal of one incoming bag: sent to the peer as REFUSE with this code. */
export class BagRefusal extends Error {
  /**
   * `overCap`: the bag breaks a cap this side announced in its HELLO (expanded size, entry
   * count, a job's size), which no honest sender's bag does (it plans within them): the
   * session ends with ERROR protocol instead of a REFUSE, so a peer cannot make this side
   * inflate bomb after bomb (req-sec11)
   */
  constructor(readonly code: string, message: string, readonly job?: string, readonly overCap = false) {
    super(message);
  }
}

/** the bag reader's issues for a cap the receiver announced in its HELLO */
const ANNOUNCED_CAPS = new Set(['too-expanded', 'entry-too-big', 'too-many']);

export interface ReceiveCaps {
  maxBag: number;
  maxExpanded: number;
  maxJobs: number;
  maxJob: number;
}

/** What a stager needs to know (plain data: it is posted to the stage worker). */
export interface StageRequest {
  bag: string;
  codec: BagCodec;
  caps: ReceiveCaps;
  /** this site and the peer the bag comes from (each job header must say so) */
  site: string;
  peer: string;
  /** job commands accepted from the peer; undefined = not checked */
  accept?: string[] | undefined;
  /** bags/in/PEER/HASH.part */
  part: string;
  /** bags/in/PEER/HASH.d */
  staging: string;
  /** the bag's size in bytes */
  size: number;
  /** on the stage worker: make the creates on that thread too (default: the session's thread makes them) */
  createsHere?: boolean;
}

/** What a stager found: the jobs written into `HASH.d/`, not yet durable or committed. */
export interface StageOutcome {
  /** ids of the jobs staged */
  committed: string[];
  /** their sizes in the bag, in the order of `committed` */
  sizes: number[];
  /** jobs skipped because the ledger already held them (only where the stager can ask it) */
  duplicates: number;
  bytes: number;
}

/** Where a stager writes its small jobs (StageOps batches them to the worker; DirectSink writes at once). */
export interface StageSink {
  create(path: string, parts: readonly Uint8Array[], len: number): Promise<void>;
  /** hand over what is batched */
  send(): void;
  /** every create so far done; throws the first failure */
  flush(): Promise<void>;
  /** every create handed over settled, whatever the outcome; what is batched is dropped */
  settle(): Promise<void>;
}

/** Creates each file at once with synchronous calls, on this thread (the stage worker's own). */
export class DirectSink implements StageSink {
  async create(path: string, parts: readonly Uint8Array[]): Promise<void> {
    let fd: number;
    try {
      fd = fs.openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (err) {
      throw new SpoolError(`creating ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      for (const p of parts) {
        let off = 0;
        while (off < p.byteLength) off += fs.writeSync(fd, p, off, p.byteLength - off);
      }
    } catch (err) {
      throw new SpoolError(`writing ${path}: ${(err as Error).message}`, { cause: err });
    } finally {
      fs.closeSync(fd);
    }
  }
  send(): void {}
  async flush(): Promise<void> {}
  async settle(): Promise<void> {}
}

/** How far the partial file has grown, and whether the session has ended. */
export interface Growth {
  available(): number;
  stopped(): boolean;
  /**
   * resolves when either may have changed since available() returned `seen` (or after a
   * bounded time: the caller looks again)
   */
  wait(seen: number): Promise<void>;
  /** the stager is alive (each chunk read) */
  beat?(): void;
}

/** Growth told by the session on this thread (grew(), stop()). */
export class LocalGrowth implements Growth {
  private wake: (() => void) | undefined;
  private stop_ = false;
  constructor(private avail: number) {}
  available(): number {
    return this.avail;
  }
  stopped(): boolean {
    return this.stop_;
  }
  grew(length: number): void {
    if (length > this.avail) this.avail = length;
    this.poke();
  }
  stop(): void {
    this.stop_ = true;
    this.poke();
  }
  wait(seen: number): Promise<void> {
    if (this.avail !== seen || this.stop_) return Promise.resolve();
    return new Promise<void>((r) => (this.wake = r));
  }
  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/**
 * The shared words of a stager on the stage worker: the session's thread stores the
 * partial's length and the stop flag, the worker its heartbeat and whether it waits for
 * bytes (the watchdog in stage-ops.ts reads both).
 */
export const SHARED_AVAILABLE = 0;
export const SHARED_STOP = 1;
export const SHARED_BEAT = 2;
export const SHARED_WAITING = 3;
export const SHARED_WORDS = 4;

/**
 * The stall clock's milliseconds, shared by the session's thread and the stage worker:
 * CLOCK_MONOTONIC (process.hrtime), the same in every thread of the process and never
 * stepped by NTP or an admin; performance.now() has an origin per thread, Date.now()
 * jumps with the wall clock (a step forward took a healthy worker for hung).
 */
export function monoMsBig(): bigint {
  return process.hrtime.bigint() / 1_000_000n;
}
export function monoMs(): number {
  return Number(monoMsBig());
}

/** how long one wait for the partial to grow lasts before the stager looks again (ms) */
const GROWTH_WAIT_MS = 1000;

/** Atomics.waitAsync (in Node since 16; not in this TypeScript's lib) */
const waitAsync = (Atomics as unknown as { waitAsync(a: BigInt64Array, i: number, v: bigint, ms: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

/** Growth read from shared memory (on the stage worker; stage-ops.ts writes it). */
export class SharedGrowth implements Growth {
  constructor(private readonly words: BigInt64Array) {}
  available(): number {
    return Number(Atomics.load(this.words, SHARED_AVAILABLE));
  }
  stopped(): boolean {
    return Atomics.load(this.words, SHARED_STOP) !== 0n;
  }
  beat(): void {
    Atomics.store(this.words, SHARED_BEAT, monoMsBig());
  }
  async wait(seen: number): Promise<void> {
    if (this.stopped()) return;
    Atomics.store(this.words, SHARED_WAITING, 1n);
    try {
      // on the length the caller saw, not a fresh load: a length stored (and notified)
      // between the caller's look and this wait ends the wait at once, instead of
      // sleeping GROWTH_WAIT_MS on the new value (the last DATA frame of a bag)
      const r = waitAsync(this.words, SHARED_AVAILABLE, BigInt(seen), GROWTH_WAIT_MS);
      if (r.async) await r.value;
    } finally {
      Atomics.store(this.words, SHARED_WAITING, 0n);
      this.beat();
    }
  }
}

/** the fault test's point `session-mid-stage` is armed (lib/spool/fault.ts reads the variable once too) */
const MID_STAGE_ARMED = process.env.MAILBAG_FAULT === 'session-mid-stage';

/**
 * bytes a stager reads from the partial at a time. Smaller while the fault test's point
 * `session-mid-stage` is armed: a stager on the stage worker may start only once the
 * whole of a small bag has arrived, and the point is passed only by a job staged while
 * bytes of its bag are still unread
 */
const TAIL_CHUNK = MID_STAGE_ARMED ? 16 * 1024 : 256 * 1024;

/**
 * The bytes of a partial file from 0 to `size` while it grows: a read past what has been
 * written waits for the growth. Every byte read passes through the SHA-256.
 */
export class PartialSource {
  private fh: FileHandle | undefined;
  private fd: number | undefined;
  private pos = 0;
  private waiting = false;
  private readonly hash = createHash('sha256');

  /** `sync`: read with synchronous calls (on the stage worker: no pool turn per chunk) */
  constructor(private readonly path: string, private readonly size: number, private readonly growth: Growth, private readonly sync = false) {}

  /** a read is waiting for bytes the link has not brought yet */
  get starved(): boolean {
    return this.waiting;
  }

  /** bytes not yet read */
  get missing(): number {
    return this.size - this.pos;
  }

  get stopped(): boolean {
    return this.growth.stopped();
  }

  /**
   * the next bytes, undefined at `size`. Calls are served one after the other: the bag
   * reader may still be waiting in one when a refusal's drain asks for the rest, and
   * every byte must be hashed once, in order.
   */
  next(): Promise<Buffer | undefined> {
    const r = this.queue.then(() => this.step());
    this.queue = r.catch(() => undefined);
    return r;
  }

  private queue: Promise<unknown> = Promise.resolve();

  private async step(): Promise<Buffer | undefined> {
    if (this.pos >= this.size) return undefined;
    for (let seen = this.growth.available(); seen <= this.pos && !this.growth.stopped(); seen = this.growth.available()) {
      this.waiting = true;
      try {
        await this.growth.wait(seen);
      } finally {
        this.waiting = false;
      }
    }
    if (this.growth.stopped()) throw new SpoolError(`staging of ${this.path} stopped: the session ended`);
    this.growth.beat?.();
    const available = this.growth.available();
    const n = Math.min(TAIL_CHUNK, available - this.pos, this.size - this.pos);
    const buf = Buffer.allocUnsafe(n);
    let bytesRead: number;
    if (this.sync) {
      this.fd ??= fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      bytesRead = fs.readSync(this.fd, buf, 0, n, this.pos);
    } else {
      this.fh ??= await open(this.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      bytesRead = (await this.fh.read(buf, 0, n, this.pos)).bytesRead;
    }
    if (bytesRead === 0) throw new SpoolError(`partial bag ${this.path} is shorter than the ${available} bytes written to it`);
    const b = bytesRead === n ? buf : buf.subarray(0, bytesRead);
    this.pos += bytesRead;
    this.hash.update(b);
    return b;
  }

  async *chunks(): AsyncGenerator<Buffer> {
    for (;;) {
      const b = await this.next();
      if (!b) return;
      yield b;
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Write a new file (O_EXCL, 0600) from chunks, at most `max` bytes; no fsync (the commit's). */
async function writeStaged(path: string, content: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, max: number): Promise<number> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let size = 0;
  try {
    for await (const chunk of content) {
      size += chunk.byteLength;
      if (size > max) throw new BagRefusal('too-big', `a job in the bag is larger than ${max} bytes`, undefined, true);
      let off = 0;
      while (off < chunk.byteLength) off += (await fh.write(chunk, off, chunk.byteLength - off)).bytesWritten;
    }
  } finally {
    await fh.close();
  }
  return size;
}

/**
 * Every chunk of a (small) bag entry, read as it flows. Through a Readable's async
 * iterator and readJobStream's generator, one of each per job, the stage worker took
 * about 30 % more CPU (their listeners, promises and the garbage they leave): 1,460 ms
 * against 1,060 for 10,160 jobs.
 */
function gather(stream: Readable): Promise<Buffer[]> {
  return new Promise<Buffer[]>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(chunks));
    stream.once('error', reject);
  });
}

/** A whole job's chunks as its header and its payload's chunks; throws as readJobStream does (MailbagError bad-job). */
export function splitJob(chunks: readonly Buffer[], what: string): { header: JobHeader; payload: Buffer[] } {
  const reader = new JobHeaderReader();
  for (let i = 0; i < chunks.length; i++) {
    const r = reader.push(chunks[i]!);
    if (!r.ok) throw new MailbagError('bad-job', `${what}: ${r.issue.message}`);
    if (r.value.done) {
      const rest = chunks.slice(i + 1);
      return { header: r.value.header, payload: r.value.rest.length > 0 ? [r.value.rest, ...rest] : rest };
    }
  }
  const r = reader.end();
  throw new MailbagError('bad-job', `${what}: ${r.ok ? 'truncated' : r.issue.message}`);
}

async function* rejoin(prefix: Buffer, rest: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  if (prefix.length) yield prefix;
  yield* rest;
}

function rmQuiet(path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => fs.rm(path, { recursive: true, force: true }, (err) => (err ? reject(err) : resolve())));
}

/**
 * A monotonic clock in ms. The stage worker's first bag used to load node:perf_hooks (the
 * global `performance`, 1.9 ms of CPU on that thread, on the session's critical path), and
 * node:fs/promises for the directory's mkdir and rm (0.8 ms): neither is loaded there now
 * (fs/promises only for a job too large to gather, or a stager on the caller's thread).
 */
function nowMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

/** how long a stager works before the event loop gets a turn (ms) */
const STAGE_SLICE_MS = 4;
/** bag entries this small are read whole and created through the sink */
const SMALL_ENTRY = 256 * 1024;
/** the largest file a sink creates (stage-ops.ts's shared buffers) */
export const MAX_SINK_CREATE = 512 * 1024;

/**
 * Stage the bag `req` names from `src` into `req.staging` (made afresh). Resolves when all
 * `size` bytes have been read, their SHA-256 is the bag's name and every entry was good;
 * else rejects with a BagRefusal (`bad-hash` first: a bag damaged on its way is never
 * taken for a hostile one) or a local failure, with `HASH.d/` removed. `hasJob`: the
 * ledger, where this thread has it (a job it holds is skipped; the commit drops the rest).
 */
export async function stageFrom(src: PartialSource, req: StageRequest, ops: StageSink, hasJob?: (id: string) => boolean, beat?: () => void): Promise<StageOutcome> {
  const { bag, codec, caps, staging } = req;
  const committed: string[] = [];
  const sizes: number[] = [];
  let duplicates = 0;
  let bytes = 0;
  let failure: { err: unknown } | undefined;
  let midStage = false;
  let turn = nowMs();
  // the bag's expanded bytes are short-lived Buffers outside V8's heap (the inflater's
  // 64 KiB chunks, each job's chunks until they are written): about five times the bytes
  // the session's own pacer counts on the link (lib/memory.ts)
  const gcPacer = new YoungGcPacer();
  try {
    await rmQuiet(staging);
    await new Promise<void>((resolve, reject) => fs.mkdir(staging, { mode: 0o700 }, (err) => (err ? reject(err) : resolve())));
    for await (const entry of readBag(src.chunks(), {
      codec,
      maxCompressed: caps.maxBag,
      maxExpanded: caps.maxExpanded,
      maxEntries: caps.maxJobs,
      maxEntrySize: caps.maxJob + 1024 * 1024,
      // each job is copied into a batch's shared buffer or written before the next entry
      recycle: true,
    })) {
      gcPacer.moved(entry.size);
      const what = `bag ${bag.slice(0, 12)} entry ${entry.name}`;
      // a small entry is gathered whole, then split into header and payload; a larger one
      // is streamed
      const small = entry.size <= SMALL_ENTRY ? splitJob(await gather(entry.stream), what) : undefined;
      const { header, payload } = small ?? (await readJobStream(entry.stream, what));
      if (header.id !== entry.name) throw new BagRefusal('bad-job', `entry ${entry.name}: its header says id ${header.id}`);
      if (header.from !== req.peer) throw new BagRefusal('bad-job', `job ${header.id} claims to come from ${header.from}, not ${req.peer}`, header.id);
      if (header.to !== req.site) throw new BagRefusal('bad-job', `job ${header.id} is for ${header.to}, not ${req.site}`, header.id);
      if (req.accept && !req.accept.includes(header.command)) {
        throw new BagRefusal('forbidden-command', `job ${header.id}: command ${header.command} is not accepted from ${req.peer}`, header.id);
      }
      if (hasJob?.(header.id)) {
        duplicates++;
        if (!small) for await (const chunk of payload) void chunk;
        continue;
      }
      // the job file again: the header in its one canonical encoding, then the payload
      // written into the staging directory only: it counts for nothing until the ledger
      // line (step 3), and a crash before that removes the whole directory (S6)
      const dest = join(staging, header.id);
      if (small) {
        // a small job is created through the sink: on the stage worker at once, else in
        // batches by the stage worker (on ext4 a file create costs 0.1-1 ms of kernel
        // time; creates racing in one directory spin on its lock: one thread makes them)
        const chunks: Buffer[] = [encodeJobHeader(header), ...small.payload];
        let len = 0;
        for (const chunk of chunks) len += chunk.length;
        if (len <= MAX_SINK_CREATE) await ops.create(dest, chunks, len);
        else await writeStaged(dest, chunks, caps.maxJob + 1024 * 1024); // a header grown in its canonical form
      } else {
        await writeStaged(dest, rejoin(encodeJobHeader(header), payload), caps.maxJob + 1024 * 1024);
      }
      committed.push(header.id);
      sizes.push(entry.size);
      bytes += entry.size;
      beat?.();
      // when the reader (it reads ahead) already waits for the link, what is batched
      // goes to the worker now, not waited for: the disk works while the link brings
      // the rest, and a job staged mid-arrival is in HASH.d/, not in a half-full batch
      if (src.starved) ops.send();
      if (!midStage && src.missing > 0) {
        midStage = true;
        // the job is in HASH.d/ before this point is passed; only when the point is armed:
        // the flush waits for everything the worker has queued (the bag before's moves too)
        if (MID_STAGE_ARMED) await ops.flush();
        faultPoint('session-mid-stage');
      }
      // give the event loop a turn every few ms: on the session's thread DATA goes on
      // being written and PROGRESS sent, on the stage worker the moves of the bag before
      // are applied, while this bag is staged
      if (nowMs() - turn > STAGE_SLICE_MS) {
        ops.send();
        await new Promise<void>((r) => setImmediate(r));
        turn = nowMs();
      }
    }
    // every job of the bag written before the bag counts as staged
    await ops.flush();
  } catch (err) {
    failure = { err };
  }
  // nothing the worker may still write into HASH.d/ once it is removed below
  await ops.settle();
  try {
    // every byte through the hash, also after a refusal or when the bag ended early: the
    // hash decides first (a bag damaged on its way is bad-hash, rebuilt by the sender,
    // never a job refused for good)
    while (await src.next());
  } catch (err) {
    failure ??= { err };
  } finally {
    await src.close();
  }
  if (src.stopped || src.missing > 0) {
    await rmQuiet(staging);
    throw failure?.err ?? new SpoolError(`staging bag ${bag.slice(0, 12)} stopped before its end`);
  }
  if (src.digest() !== bag) {
    await rmQuiet(staging);
    await rmQuiet(req.part);
    throw new BagRefusal('bad-hash', `bag ${bag.slice(0, 12)}: SHA-256 of the received bytes does not match its name`);
  }
  if (failure) {
    const err = failure.err;
    await rmQuiet(staging);
    const refusal =
      err instanceof BagRefusal ? err
      : err instanceof BagError ? new BagRefusal(err.issue === 'bad-hash' ? 'bad-hash' : err.code, err.message, undefined, ANNOUNCED_CAPS.has(err.issue))
      : err instanceof MailbagError && (err.code === 'bad-job' || err.code === 'too-big') ? new BagRefusal(err.code, err.message)
      : undefined;
    if (!refusal) throw err;
    // refused, whole and hashed: its sender forgets the bag or fails the job it names
    // (docs/protocol.md §3), so nobody resumes this partial; kept, it stayed until
    // ledger_retention. A stager stopped or failed locally (above, below) keeps it
    await rmQuiet(req.part);
    throw refusal;
  }
  return { committed, sizes, duplicates, bytes };
}

/** A stager's outcome as the stage worker posts it (errors are not structured-cloned whole). */
export type StageResult =
  | { ok: true; outcome: StageOutcome }
  | { ok: false; refusal: { code: string; message: string; job?: string; overCap?: boolean } }
  | { ok: false; error: { message: string; mailbagCode?: string; errno?: string } };

export function toStageResult(p: Promise<StageOutcome>): Promise<StageResult> {
  return p.then(
    (outcome) => ({ ok: true, outcome }),
    (err: unknown) => {
      if (err instanceof BagRefusal) return { ok: false, refusal: { code: err.code, message: err.message, ...(err.job === undefined ? {} : { job: err.job }), ...(err.overCap ? { overCap: true } : {}) } };
      const e = err as (Error & { code?: unknown; cause?: { code?: unknown } }) | undefined;
      const errno = typeof e?.cause?.code === 'string' ? e.cause.code : typeof e?.code === 'string' && !(err instanceof MailbagError) ? e.code : undefined;
      return {
        ok: false,
        error: {
          message: e?.message ?? String(err),
          ...(err instanceof MailbagError ? { mailbagCode: err.code } : {}),
          ...(errno === undefined ? {} : { errno }),
        },
      };
    },
  );
}

/** The error a posted failure stands for, on the session's thread. */
export function fromStageFailure(r: Exclude<StageResult, { ok: true }>): Error {
  if ('refusal' in r) return new BagRefusal(r.refusal.code, r.refusal.message, r.refusal.job, r.refusal.overCap === true);
  const { message, mailbagCode, errno } = r.error;
  const cause = errno === undefined ? undefined : Object.assign(new Error(message), { code: errno });
  if (mailbagCode !== undefined && mailbagCode !== 'spool' && mailbagCode !== 'spool-full') return new MailbagError(mailbagCode as MailbagError['code'], message, cause ? { cause } : undefined);
  return new SpoolError(message, cause ? { cause } : undefined);
}
