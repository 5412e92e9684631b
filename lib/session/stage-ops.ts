// StageOps: a receiver's file-system steps (creates of staged jobs, renames into in/PEER/,
// removals) gathered into batches and applied by the stage worker thread
// (lib/session/stage-worker.ts) with synchronous calls, while this thread goes on
// receiving, hashing and decompressing. On ext4 a create costs 0.1–1 ms of kernel time:
// done here, each one held up the read loop; through libuv's pool, each was a thread
// round trip. One worker per process, shared by every batch, applies them in the order
// they were sent (no two threads creating in one directory at once).
//
// What it guarantees: flush() resolves only when every step sent before it is complete
// (the caller fsyncs after that), and rejects with the first failure; the bytes in flight
// are bounded (SLOTS × BATCH_BYTES); every wait is bounded: a worker that does not come
// online in START_TIMEOUT_MS or answers no batch for STALL_MS is terminated, and each
// batch it held rejects. The job bytes travel in a few shared buffers (SLOTS), reused. Where no built worker exists (running from the TypeScript
// sources), the same steps run on this thread ('caller').

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SpoolError } from '../errors.js';
import { tierUpLater } from '../memory.js';
import { applyStageOps, type StageOp, type StageOpsResult } from './stage-apply.js';
import { StageBatches } from './stage-batch.js';
import { monoMs, monoMsBig, SHARED_AVAILABLE, SHARED_BEAT, SHARED_STOP, SHARED_WAITING, SHARED_WORDS, type StageRequest, type StageResult } from './stage-bag.js';
import type { FromStageWorker, SyncfsResult, ToStageWorker } from './stage-worker.js';

/** a worker not online after this long is terminated */
export const START_TIMEOUT_MS = 30_000;
/** a worker holding batches that answers none for this long is taken as hung and terminated */
export const STALL_MS = 30_000;
/** after terminate(), how long the worker may take to stop before its batches reject anyway */
export const STOP_TIMEOUT_MS = 10_000;
export interface StageWorkerSettings {
  /** the worker's script (default ./stage-worker.js beside this file; tests give a bootstrap) */
  script?: URL | string;
  workerData?: unknown;
  stallMs?: number;
  /** how long prestartStageWorker's change of V8's flags waits for the worker to load (default TIER_UP_WAIT_MS) */
  tierUpWaitMs?: number;
}

let settings: StageWorkerSettings = {};

function scriptUrl(): URL | string {
  return settings.script ?? new URL('./stage-worker.js', import.meta.url);
}

/** the built worker beside this file (missing when run from the .ts sources) */
export const STAGE_WORKER_BUILT = fs.existsSync(fileURLToPath(new URL('./stage-worker.js', import.meta.url)));

/** Settings for the stage worker started from now on (a running one is stopped once idle). Tests. */
export function configureStageWorker(next: StageWorkerSettings): void {
  settings = { ...next };
  if (thread && thread.pending.size === 0) void stopThread(thread, 'reconfigured');
  else if (thread) thread.reason ??= 'reconfigured';
}

interface Pending {
  resolve(m: FromStageWorker): void;
  reject(err: Error): void;
  /** whether this request is overdue (the worker is taken as hung) */
  stalled(now: number, heard: number, stallMs: number): boolean;
}

/** a batch: the worker answers within STALL_MS of its sending or of its last answer, whichever is later */
function batchStalled(): Pending['stalled'] {
  const sent = monoMs();
  return (now, heard, stallMs) => now - Math.max(heard, sent) > stallMs;
}

interface Thread {
  worker: Worker;
  online: boolean;
  pending: Map<number, Pending>;
  heard: number;
  reason: string | undefined;
  timer: NodeJS.Timeout;
  exited: Promise<void>;
  /** set to 1 by the thread once it has loaded its modules (stage-worker.ts, at its end) */
  loaded: Int32Array;
}

let thread: Thread | undefined;
let nextId = 1;

function startThread(): Thread {
  const loaded = new Int32Array(new SharedArrayBuffer(4));
  const given = settings.workerData;
  // a test's workerData keeps its own fields
  const workerData = given === undefined ? { loaded } : typeof given === 'object' && given !== null && !Array.isArray(given) ? { ...given, loaded } : given;
  const worker = new Worker(scriptUrl(), {
    resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 },
    workerData,
  });
  let exited!: () => void;
  const started = monoMs();
  const t: Thread = {
    worker,
    online: false,
    pending: new Map(),
    heard: started,
    reason: undefined,
    timer: undefined as unknown as NodeJS.Timeout,
    exited: new Promise<void>((r) => (exited = r)),
    loaded,
  };
  const stallMs = settings.stallMs ?? STALL_MS;
  t.timer = setInterval(() => {
    const now = monoMs();
    if (!t.online && now - started > START_TIMEOUT_MS) void stopThread(t, `did not start within ${START_TIMEOUT_MS / 1000} s`);
    else if ([...t.pending.values()].some((p) => p.stalled(now, t.heard, stallMs))) void stopThread(t, `answered no request for ${Math.round(stallMs / 1000)} s`);
  }, Math.max(5, Math.min(1000, Math.floor(stallMs / 4))));
  t.timer.unref();
  worker.on('online', () => (t.online = true));
  worker.on('message', (m: FromStageWorker) => {
    t.heard = monoMs();
    if ('apply' in m) {
      // the creates of a stager on the worker, made here (stage-worker.ts says why); the
      // bytes are in a shared buffer the worker reuses once this answer arrives
      worker.postMessage({ id: m.id, k: 'applied', result: applyStageOps(m.apply, m.data) } satisfies ToStageWorker);
      return;
    }
    const p = t.pending.get(m.id);
    if (!p) return;
    t.pending.delete(m.id);
    if (t.pending.size === 0) {
      worker.unref();
      if (t.reason) void stopThread(t, t.reason);
    }
    p.resolve(m);
  });
  worker.on('error', (err: unknown) => {
    t.reason ??= err instanceof Error ? `uncaught ${err.name}: ${err.message}` : `uncaught ${String(err)}`;
  });
  worker.on('exit', (code) => {
    clearInterval(t.timer);
    if (thread === t) thread = undefined;
    exited();
    failPending(t, `the stage worker stopped (exit code ${code}${t.reason ? `: ${t.reason}` : ''})`);
  });
  // after the listeners: adding a 'message' listener refs the worker's port again (Node
  // 20), so an idle worker unref'd before it kept its process alive for ever
  worker.unref();
  return t;
}

function failPending(t: Thread, why: string): void {
  const pending = [...t.pending.values()];
  t.pending.clear();
  for (const p of pending) p.reject(new SpoolError(`${why} before a request of staging was done`));
}

async function stopThread(t: Thread, reason: string): Promise<void> {
  t.reason ??= reason;
  if (thread === t) thread = undefined;
  void t.worker.terminate().catch(() => undefined);
  // a thread stuck in a system call may not stop: its batches reject all the same
  const timeout = new Promise<void>((r) => setTimeout(r, STOP_TIMEOUT_MS).unref());
  await Promise.race([t.exited, timeout]);
  clearInterval(t.timer);
  failPending(t, `the stage worker was stopped (${t.reason})`);
}

/** 'worker' where a worker script exists (built, or configured by a test), else 'caller' */
export function stageWhere(): 'worker' | 'caller' {
  return STAGE_WORKER_BUILT || settings.script !== undefined ? 'worker' : 'caller';
}

/**
 * Start the stage worker now, idle and unref'd, so its start-up overlaps other work. A
 * receiver's process (serveLink, at serve's start) also asks V8 to tier up later
 * (lib/memory.ts: most of what a short session runs is not worth optimizing), once the
 * worker has loaded.
 */
export function prestartStageWorker(): void {
  if (stageWhere() !== 'worker' || thread) {
    tierUpLater();
    return;
  }
  const t = (thread = startThread());
  // V8's flags change once the thread has loaded its modules (or after TIER_UP_WAIT_MS):
  // Node's own built-in modules come with code caches made under V8's default flags and
  // refused under any other, so each one a thread loads after the change is compiled from
  // its source and a cache of it made again. Changed first, the worker's start took 44 ms
  // of CPU instead of 20 (bench/README.md, relay, session 10)
  const r = waitLoaded(t.loaded, 0, 0, settings.tierUpWaitMs ?? TIER_UP_WAIT_MS);
  if (r.async) void (r.value as Promise<string>).then(() => tierUpLater());
  else tierUpLater();
}

/** the longest V8's flags wait for the stage worker to load before they change all the same (ms) */
export const TIER_UP_WAIT_MS = 1_000;

/** Atomics.waitAsync (in Node since 16; not in this TypeScript's lib); does not keep the process alive */
const waitLoaded = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

/** Stop the stage worker (bounded); batches it holds reject. */
export async function stopStageWorker(): Promise<void> {
  if (thread) await stopThread(thread, 'stopped by stopStageWorker()');
}

/** For tests: whether a worker runs, its thread id, and whether it has loaded its modules. */
export function stageWorkerState(): { running: boolean; threadId: number | undefined; loaded: boolean } {
  return { running: thread !== undefined, threadId: thread?.worker.threadId, loaded: thread !== undefined && Atomics.load(thread.loaded, 0) === 1 };
}

function runOnWorker(ops: StageOp[], data: Uint8Array | undefined): Promise<StageOpsResult> {
  return request((id) => (data ? { id, ops, data } : { id, ops }), batchStalled()).then((m) => (m as { result: StageOpsResult }).result);
}

/** post a request to the worker (started if need be); resolves with its answer */
function request(make: (id: number) => ToStageWorker, stalled: Pending['stalled']): Promise<FromStageWorker> {
  const t = (thread ??= startThread());
  const id = nextId++;
  return new Promise<FromStageWorker>((resolve, reject) => {
    if (t.pending.size === 0) {
      t.heard = monoMs();
      t.worker.ref();
    }
    t.pending.set(id, { resolve, reject, stalled });
    const m = make(id);
    try {
      // data is a view of a SharedArrayBuffer: shared, not copied
      t.worker.postMessage(m);
    } catch (err) {
      t.pending.delete(id);
      reject(err as Error);
    }
  });
}

/** A stager running on the stage worker (stage-bag.ts), told of the partial's growth through shared memory. */
export interface WorkerStager {
  /** the outcome once every byte is read; rejects when the worker stops or hangs */
  readonly done: Promise<StageResult>;
  grew(length: number): void;
  stop(): void;
}

/**
 * Run a stager on the stage worker: `available` bytes of the partial are written now.
 * Bounded: the worker beats in shared memory at each chunk it reads and each job it
 * stages; a stager that neither waits for bytes nor beats for STALL_MS, or does not
 * answer within STALL_MS of stop(), takes the worker down (every request it held rejects).
 */
export function stageOnWorker(req: StageRequest, available: number): WorkerStager {
  const words = new BigInt64Array(new SharedArrayBuffer(SHARED_WORDS * 8));
  words[SHARED_AVAILABLE] = BigInt(available);
  words[SHARED_BEAT] = monoMsBig();
  let stopAt: number | undefined;
  const stalled = (now: number, _heard: number, stallMs: number): boolean =>
    (stopAt !== undefined && now - stopAt > stallMs) || (Atomics.load(words, SHARED_WAITING) === 0n && now - Number(Atomics.load(words, SHARED_BEAT)) > stallMs);
  const done = request((id) => ({ id, k: 'stage', req, words }), stalled).then((m) => (m as { stage: StageResult }).stage);
  return {
    done,
    grew(length: number): void {
      if (BigInt(length) <= Atomics.load(words, SHARED_AVAILABLE)) return;
      Atomics.store(words, SHARED_AVAILABLE, BigInt(length));
      Atomics.notify(words, SHARED_AVAILABLE);
    },
    stop(): void {
      stopAt ??= monoMs();
      Atomics.store(words, SHARED_STOP, 1n);
      Atomics.notify(words, SHARED_AVAILABLE);
    },
  };
}

/** how long `sync -f` may run (its child is killed after it) */
export const SYNCFS_TIMEOUT_MS = 120_000;

/**
 * `sync -f DIR` started by the stage worker (a fork from that thread costs the session's
 * thread nothing). Resolves false where it failed or is missing; bounded by
 * SYNCFS_TIMEOUT_MS (+ STALL_MS, after which the worker is taken down).
 */
export async function syncfsOnWorker(dir: string): Promise<boolean> {
  const deadline = monoMs() + SYNCFS_TIMEOUT_MS;
  const stalled = (now: number, _heard: number, stallMs: number): boolean => now > deadline + stallMs;
  const m = await request((id) => ({ id, k: 'syncfs', dir, timeoutMs: SYNCFS_TIMEOUT_MS }), stalled);
  return (m as { syncfs: SyncfsResult }).syncfs.ok;
}

/**
 * Start the stage worker's syncfs helper now (it answers at once), for a commit that will
 * use it: a bag of SYNCFS_MIN jobs or more has been answered (relay11's R2: its spawn at
 * the first commit was on the critical path). Failures are the commit's to meet.
 */
export function warmSyncfsOnWorker(): void {
  void request((id) => ({ id, k: 'warm' }), () => false).catch(() => undefined);
}

/**
 * One user's steps (a stager, one bag's moves, one bag's removals): batched, sent to the
 * shared worker or applied here ('caller'), the first failure kept for flush().
 */
export class StageOps extends StageBatches {
  constructor(where: 'worker' | 'caller') {
    super(where === 'worker' ? runOnWorker : (ops, data) => Promise.resolve(applyStageOps(ops, data)));
  }
}
