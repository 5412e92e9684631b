// writeBagFile: a bag written into a new file, built in a bag worker thread (default) or
// on the calling thread. Compressing a bag (brotli q5: about 22 MB of mail per
// CPU-second) is most of a sender's CPU; in a worker it runs beside the main thread's
// link, frames and unlinks, on another core, and with a pool of two (or one worker and
// the caller) two bags are built at once.
//
// The workers (lib/bag/bag-worker.ts) are started lazily, reused bag after bag, and
// unref'd while idle, so they never keep a process alive. Each builds one bag at a
// time with its compressor stepped on its own thread: an engine is allocated and freed
// in that thread's malloc arena, and the next bag reuses the memory (commit 3b86313).
// The caller opens the destination; the worker writes into that descriptor and replies
// only once no write is in flight, and the caller then closes it. Every wait is bounded:
// a worker that does not come online in START_TIMEOUT_MS, does not answer a ping for
// STALL_MS while it builds a bag (its thread blocked), or does not stop within
// ABORT_GRACE_MS of an abort, is terminated; one that stops (crash, terminate) rejects
// the bag it was building. docs/bag.md, "Building in a worker thread".

import fs from 'node:fs';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { MailbagError } from '../errors.js';
import { errorFromWire, writeBagToFd, type BagFileJob, type PlainBagOptions } from './bag-file.js';
import type { FromBagWorker, ToBagWorker } from './bag-worker.js';
import type { BagSummary, WriteBagOptions } from './writer.js';

export type { BagFileJob } from './bag-file.js';

export interface WriteBagFileOptions extends WriteBagOptions {
  /**
   * where the bag is built: 'worker' (default), a bag worker thread; 'caller', this
   * thread. (Default 'caller' when running from the TypeScript sources with no worker
   * script configured: see FROM_SOURCES.)
   */
  where?: 'worker' | 'caller';
}

/** A bag worker stopped (crashed, was terminated, or never started) while building a bag. Temporary ('internal'). */
export class BagWorkerError extends MailbagError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('internal', message, options);
    this.name = 'BagWorkerError';
  }
}

export interface BagWorkerSettings {
  /** bag worker threads at most; bags beyond wait their turn, first come first served (default 1) */
  workers?: number;
  /** V8 heap limits of each worker (default: young generation 2 MB; see docs/bag.md) */
  resourceLimits?: ResourceLimits;
  /** the worker's script (default lib/bag/bag-worker.js beside this file; tests give a bootstrap) */
  script?: URL | string;
  /** given to the script as workerData (tests) */
  workerData?: unknown;
  /** a busy worker that answers no ping for this long is terminated (default STALL_MS) */
  stallMs?: number;
}

/** a worker that has not come online after this long is terminated and its bag rejected */
export const START_TIMEOUT_MS = 30_000;
/** a worker still building an aborted bag after this long is terminated */
export const ABORT_GRACE_MS = 2_000;
/**
 * a worker building a bag is pinged; one whose thread has not answered for this long is
 * taken as hung and terminated (a brotli step gives its event loop a turn every MiB:
 * seconds apart even at quality 11)
 */
export const STALL_MS = 30_000;
/** how long a terminated worker may take to stop before its bag is rejected anyway */
export const STOP_TIMEOUT_MS = 10_000;

const DEFAULTS: Required<Pick<BagWorkerSettings, 'workers' | 'resourceLimits'>> = {
  workers: 1,
  resourceLimits: { maxYoungGenerationSizeMb: 2 },
};

let settings: BagWorkerSettings = {};

interface Request {
  id: number;
  jobs: BagFileJob[];
  fd: number;
  options: PlainBagOptions;
  signal: AbortSignal | undefined;
  resolve(summary: BagSummary): void;
  reject(err: unknown): void;
  slot?: Slot;
  done: boolean;
  abortTimer?: NodeJS.Timeout;
  onAbort?: () => void;
}

interface Slot {
  worker: Worker;
  online: boolean;
  busy: Request | undefined;
  /** why it stopped, when we know: the worker's uncaught error, or our reason to terminate it */
  reason: string | undefined;
  startTimer: NodeJS.Timeout | undefined;
  /** when the worker was last heard from (any message), while it builds a bag */
  heard: number;
  /** pings the worker while it builds a bag */
  watch: NodeJS.Timeout | undefined;
  /** resolves at the worker's 'exit' */
  exited: Promise<void>;
}

const slots: Slot[] = [];
const queue: Request[] = [];
let nextId = 1;

/** marks an error after which the descriptor is still the worker's: it is closed when the worker ends */
const FD_ADOPTED = Symbol('bag fd adopted');

/**
 * Running from the TypeScript sources (vitest), where no compiled bag-worker.js lies
 * beside this file: unless a script is configured, `where` defaults to 'caller' (the
 * same bytes; test/unit/bag/ts-worker.mjs is a worker script for the sources).
 */
const FROM_SOURCES = import.meta.url.endsWith('.ts');

function scriptUrl(): URL | string {
  return settings.script ?? new URL('./bag-worker.js', import.meta.url);
}

/**
 * Settings for bag workers started from now on (idle ones are stopped; busy ones finish
 * their bag and are stopped then). Call with {} for the defaults.
 */
export function configureBagWorkers(next: BagWorkerSettings): void {
  settings = { ...next };
  for (const slot of [...slots]) if (!slot.busy) void stopSlot(slot, 'reconfigured');
  for (const slot of slots) slot.reason ??= 'reconfigured';
}

/** Stop every bag worker now. A bag being built or waiting is rejected with BagWorkerError. Resolves when all have stopped (bounded). */
export async function stopBagWorkers(): Promise<void> {
  for (const req of queue.splice(0)) finish(req, new BagWorkerError('bag workers stopped before this bag was built'));
  await Promise.all([...slots].map((slot) => stopSlot(slot, 'stopped by stopBagWorkers()')));
}

/**
 * Start the bag workers now (up to the configured number), idle and unref'd, so that
 * their start-up (60–120 ms) overlaps the caller's own (a session's queue scan and
 * handshake) instead of delaying its first bag. Nothing happens when they run already,
 * or from the TypeScript sources with no worker script configured.
 */
export function prestartBagWorkers(): void {
  if (FROM_SOURCES && settings.script === undefined) return;
  const max = Math.max(1, settings.workers ?? DEFAULTS.workers);
  while (slots.filter((s) => !s.reason).length < max) if (!startSlot()) return;
}

/** How many bag workers are running and how many bags are being built or waiting (for benches and tests). */
export function bagWorkerState(): { workers: number; busy: number; queued: number; threadIds: number[] } {
  return { workers: slots.length, busy: slots.filter((s) => s.busy).length, queued: queue.length, threadIds: slots.map((s) => s.worker.threadId) };
}

function stopSlot(slot: Slot, reason: string): Promise<void> {
  slot.reason ??= reason;
  void slot.worker.terminate().catch(() => undefined);
  return withTimeout(slot.exited, STOP_TIMEOUT_MS);
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    void p.then(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

function startSlot(): Slot | undefined {
  let worker: Worker;
  try {
    worker = new Worker(scriptUrl(), {
      resourceLimits: settings.resourceLimits ?? DEFAULTS.resourceLimits,
      ...(settings.workerData === undefined ? {} : { workerData: settings.workerData }),
      // its stdout and stderr are ours (Node's default); it writes nothing to stdout, where
      // `mailbag serve` speaks its protocol. (Taking its stdout as a stream instead keeps the
      // process alive while anything written there is unread.) An uncaught error comes as 'error'.
    });
  } catch (err) {
    // cannot start one at all: every waiting bag learns why
    for (const req of queue.splice(0)) finish(req, new BagWorkerError(`cannot start a bag worker: ${(err as Error).message}`, { cause: err }));
    return undefined;
  }
  let exited!: () => void;
  const slot: Slot = { worker, online: false, busy: undefined, reason: undefined, startTimer: undefined, heard: 0, watch: undefined, exited: new Promise<void>((r) => (exited = r)) };
  slot.startTimer = setTimeout(() => {
    if (!slot.online) void stopSlot(slot, `did not start within ${START_TIMEOUT_MS / 1000} s`);
  }, START_TIMEOUT_MS);
  slot.startTimer.unref();
  worker.on('online', () => {
    slot.online = true;
    clearTimeout(slot.startTimer);
  });
  worker.on('message', (m: FromBagWorker) => {
    slot.heard = Date.now();
    if (m.type === 'pong') return;
    const req = slot.busy;
    if (!req || req.id !== m.id) return;
    slot.busy = undefined;
    clearInterval(slot.watch);
    worker.unref();
    // rejected already (it did not stop in time after an abort): the descriptor was left to us
    if (req.done) fs.close(req.fd, () => undefined);
    if (m.ok) finish(req, undefined, m.summary);
    else finish(req, errorFromWire(m.error, () => req.signal?.reason));
    if (slot.reason) void stopSlot(slot, slot.reason);
    pump();
  });
  worker.on('error', (err: unknown) => {
    slot.reason ??= err instanceof Error ? `uncaught ${err.name}: ${err.message}` : `uncaught ${String(err)}`;
  });
  worker.on('exit', (code) => {
    clearTimeout(slot.startTimer);
    clearInterval(slot.watch);
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    const req = slot.busy;
    slot.busy = undefined;
    exited();
    if (req && !req.done) {
      // the thread has stopped: nothing writes into the descriptor any more
      if (req.signal?.aborted) finish(req, req.signal.reason);
      else finish(req, new BagWorkerError(`the bag worker stopped (exit code ${code}${slot.reason ? `: ${slot.reason}` : ''}) while building a bag`));
    } else if (req?.done) {
      // rejected already (it did not stop in time): the descriptor was left to us
      fs.close(req.fd, () => undefined);
    }
    pump();
  });
  // after the listeners: adding a 'message' listener refs the worker's port again (Node
  // 20), so an idle worker unref'd before it kept its process alive for ever
  worker.unref();
  slots.push(slot);
  return slot;
}

function pump(): void {
  while (queue.length > 0) {
    let slot = slots.find((s) => !s.busy && !s.reason);
    if (!slot) {
      const max = Math.max(1, settings.workers ?? DEFAULTS.workers);
      if (slots.filter((s) => !s.reason || s.busy).length >= max) return;
      slot = startSlot();
      if (!slot) return;
    }
    const req = queue.shift()!;
    slot.busy = req;
    req.slot = slot;
    slot.worker.ref();
    const msg: ToBagWorker = { type: 'bag', id: req.id, jobs: req.jobs, fd: req.fd, options: req.options };
    slot.worker.postMessage(msg);
    watch(slot);
  }
}

/** Ping a busy worker; terminate it when its thread has not answered for stallMs. */
function watch(slot: Slot): void {
  const stallMs = settings.stallMs ?? STALL_MS;
  slot.heard = Date.now();
  clearInterval(slot.watch);
  slot.watch = setInterval(() => {
    if (!slot.busy) return clearInterval(slot.watch);
    if (Date.now() - slot.heard > stallMs) {
      clearInterval(slot.watch);
      void stopSlot(slot, `did not answer for ${stallMs / 1000} s`);
      return;
    }
    const ping: ToBagWorker = { type: 'ping' };
    slot.worker.postMessage(ping);
  }, Math.max(10, Math.min(5_000, stallMs / 3)));
  slot.watch.unref();
}

function finish(req: Request, err: unknown, summary?: BagSummary): void {
  if (req.done) return;
  req.done = true;
  clearTimeout(req.abortTimer);
  if (req.onAbort) req.signal?.removeEventListener('abort', req.onAbort);
  if (err === undefined && summary) req.resolve(summary);
  else req.reject(err);
}

function abortRequest(req: Request): void {
  const i = queue.indexOf(req);
  if (i >= 0) {
    // not started: nothing of it is in a worker
    queue.splice(i, 1);
    return finish(req, req.signal?.reason);
  }
  const slot = req.slot;
  if (!slot || req.done) return;
  const msg: ToBagWorker = { type: 'abort', id: req.id };
  slot.worker.postMessage(msg);
  req.abortTimer = setTimeout(() => {
    if (slot.busy !== req) return;
    void stopSlot(slot, `still building an aborted bag after ${ABORT_GRACE_MS} ms`);
    // terminate() normally ends it at once ('exit' rejects the bag); if the thread does
    // not stop in time, reject anyway and leave the descriptor to the 'exit' handler
    req.abortTimer = setTimeout(() => {
      if (req.done) return;
      finish(req, Object.assign(new BagWorkerError('the bag worker did not stop after an abort'), { [FD_ADOPTED]: true }));
    }, STOP_TIMEOUT_MS);
    req.abortTimer.unref();
  }, ABORT_GRACE_MS);
}

function runInWorker(jobs: BagFileJob[], fd: number, options: PlainBagOptions, signal: AbortSignal | undefined): Promise<BagSummary> {
  return new Promise<BagSummary>((resolve, reject) => {
    const req: Request = { id: nextId++, jobs, fd, options, signal, resolve, reject, done: false };
    if (signal) {
      req.onAbort = () => abortRequest(req);
      signal.addEventListener('abort', req.onAbort, { once: true });
    }
    queue.push(req);
    pump();
  });
}

function openExclusive(path: string): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, 'wx', 0o600, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function close(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Write a bag of these job files into `dest`, a new file (created exclusively, mode
 * 0600; EEXIST if it is there). The same bytes and summary as writeBag given the same
 * jobs and options, wherever it is built; the same errors (BagError for a bad name or a
 * job that changed size, the file system's own for a job that cannot be read or a full
 * disk). Not synced: the caller fsyncs and renames it.
 *
 * On any failure — an error, an abort through `options.signal` (rejected with the
 * signal's reason), the worker stopping — `dest` is removed: it is the only thing this
 * function creates. Job files are only read. Resolves after `dest` is written and closed.
 */
export async function writeBagFile(jobs: readonly BagFileJob[], dest: string, options: WriteBagFileOptions = {}): Promise<BagSummary> {
  const { where = FROM_SOURCES && settings.script === undefined ? 'caller' : 'worker', signal, ...rest } = options;
  signal?.throwIfAborted();
  // plain copies: what crosses to a worker, and a list the caller can no longer change
  const list = jobs.map((j) => ({ name: j.name, size: j.size, path: j.path }));
  const fd = await openExclusive(dest);
  let summary: BagSummary;
  try {
    if (where === 'caller') summary = await writeBagToFd(list, fd, { ...rest, ...(signal ? { signal } : {}) });
    else {
      const plain: PlainBagOptions = {};
      if (rest.codec !== undefined) plain.codec = rest.codec;
      if (rest.level !== undefined) plain.level = rest.level;
      if (rest.maxEntrySize !== undefined) plain.maxEntrySize = rest.maxEntrySize;
      if (rest.sizeHint !== undefined) plain.sizeHint = rest.sizeHint;
      if (rest.thread !== undefined) plain.thread = rest.thread;
      summary = await runInWorker(list, fd, plain, signal);
    }
    // an abort that came as the last bytes were written still means "not wanted"
    signal?.throwIfAborted();
  } catch (err) {
    if (!(err instanceof BagWorkerError && FD_ADOPTED in err)) await close(fd).catch(() => undefined);
    await fs.promises.unlink(dest).catch(() => undefined);
    throw err;
  }
  try {
    await close(fd);
  } catch (err) {
    await fs.promises.unlink(dest).catch(() => undefined);
    throw err;
  }
  return summary;
}
