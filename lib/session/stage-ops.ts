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
import { applyStageOps, type StageOp, type StageOpsResult } from './stage-apply.js';
import type { FromStageWorker, ToStageWorker } from './stage-worker.js';

/** a worker not online after this long is terminated */
export const START_TIMEOUT_MS = 30_000;
/** a worker holding batches that answers none for this long is taken as hung and terminated */
export const STALL_MS = 30_000;
/** after terminate(), how long the worker may take to stop before its batches reject anyway */
export const STOP_TIMEOUT_MS = 10_000;
/** bytes of job data from which a batch is sent */
const BATCH_BYTES = 256 * 1024;
/** the largest file create() takes, and the size of each shared buffer */
export const MAX_CREATE = 512 * 1024;
/** steps in one batch, at most */
const BATCH_OPS = 128;
/**
 * batches with data in flight at once, in the whole process: each holds one of this many
 * shared buffers of MAX_CREATE (2 MiB in all, made once and reused: job bytes never pile
 * up as garbage in either thread's heap), and a create waits for a free one
 */
const SLOTS = 4;

export interface StageWorkerSettings {
  /** the worker's script (default ./stage-worker.js beside this file; tests give a bootstrap) */
  script?: URL | string;
  workerData?: unknown;
  stallMs?: number;
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
  resolve(r: StageOpsResult): void;
  reject(err: Error): void;
}

interface Thread {
  worker: Worker;
  online: boolean;
  pending: Map<number, Pending>;
  heard: number;
  reason: string | undefined;
  timer: NodeJS.Timeout;
  exited: Promise<void>;
}

let thread: Thread | undefined;
let nextId = 1;

function startThread(): Thread {
  const worker = new Worker(scriptUrl(), {
    resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    ...(settings.workerData === undefined ? {} : { workerData: settings.workerData }),
  });
  worker.unref();
  let exited!: () => void;
  const started = Date.now();
  const t: Thread = {
    worker,
    online: false,
    pending: new Map(),
    heard: started,
    reason: undefined,
    timer: undefined as unknown as NodeJS.Timeout,
    exited: new Promise<void>((r) => (exited = r)),
  };
  const stallMs = settings.stallMs ?? STALL_MS;
  t.timer = setInterval(() => {
    const now = Date.now();
    if (!t.online && now - started > START_TIMEOUT_MS) void stopThread(t, `did not start within ${START_TIMEOUT_MS / 1000} s`);
    else if (t.pending.size > 0 && now - t.heard > stallMs) void stopThread(t, `answered no batch for ${Math.round(stallMs / 1000)} s`);
  }, Math.max(5, Math.min(1000, Math.floor(stallMs / 4))));
  t.timer.unref();
  worker.on('online', () => (t.online = true));
  worker.on('message', (m: FromStageWorker) => {
    t.heard = Date.now();
    const p = t.pending.get(m.id);
    if (!p) return;
    t.pending.delete(m.id);
    if (t.pending.size === 0) {
      worker.unref();
      if (t.reason) void stopThread(t, t.reason);
    }
    p.resolve(m.result);
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
  return t;
}

function failPending(t: Thread, why: string): void {
  const pending = [...t.pending.values()];
  t.pending.clear();
  for (const p of pending) p.reject(new SpoolError(`${why} before a batch of staging steps was done`));
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

/** Start the stage worker now, idle and unref'd, so its start-up overlaps other work. */
export function prestartStageWorker(): void {
  if (stageWhere() === 'worker') thread ??= startThread();
}

/** Stop the stage worker (bounded); batches it holds reject. */
export async function stopStageWorker(): Promise<void> {
  if (thread) await stopThread(thread, 'stopped by stopStageWorker()');
}

/** For tests: whether a worker runs, and its thread id. */
export function stageWorkerState(): { running: boolean; threadId: number | undefined } {
  return { running: thread !== undefined, threadId: thread?.worker.threadId };
}

/** the shared buffers, made on first use */
const free: Uint8Array[] = [];
let made = 0;
const slotWaiters: (() => void)[] = [];

async function takeSlot(): Promise<Uint8Array> {
  for (;;) {
    const b = free.pop();
    if (b) return b;
    if (made < SLOTS) {
      made++;
      return new Uint8Array(new SharedArrayBuffer(MAX_CREATE));
    }
    await new Promise<void>((r) => slotWaiters.push(r));
  }
}

function giveSlot(b: Uint8Array): void {
  free.push(b);
  slotWaiters.shift()?.();
}

/** a buffer a stopped worker may still have been reading: not reused (another is made) */
function dropSlot(): void {
  made--;
  slotWaiters.shift()?.();
}

function runOnWorker(ops: StageOp[], data: Uint8Array | undefined): Promise<StageOpsResult> {
  const t = (thread ??= startThread());
  const id = nextId++;
  return new Promise<StageOpsResult>((resolve, reject) => {
    if (t.pending.size === 0) {
      t.heard = Date.now();
      t.worker.ref();
    }
    t.pending.set(id, { resolve, reject });
    const m: ToStageWorker = data ? { id, ops, data } : { id, ops };
    try {
      // data is a view of a SharedArrayBuffer: shared, not copied
      t.worker.postMessage(m);
    } catch (err) {
      t.pending.delete(id);
      reject(err as Error);
    }
  });
}

/** an Error shaped like the one the failed system call threw (its `code` decides spool-full) */
function opError(op: StageOp | undefined, e: { code: string | undefined; message: string }): Error {
  const what = !op ? 'a staging step' : op.k === 'create' ? `creating ${op.path}` : op.k === 'rename' ? `renaming ${op.from}` : `removing ${op.path}`;
  const err = new SpoolError(`${what}: ${e.message}`, { cause: Object.assign(new Error(e.message), { code: e.code }) });
  return err;
}

/**
 * One user's steps (a stager, one bag's moves, one bag's removals): batched, sent to the
 * shared worker (or applied here), the first failure kept for flush().
 */
export class StageOps {
  private ops: StageOp[] = [];
  /** the shared buffer the batched creates' bytes are in */
  private slot: Uint8Array | undefined;
  private used = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | undefined;
  /** unlinks of files that were not there */
  missing = 0;

  constructor(private readonly where: 'worker' | 'caller') {}

  /**
   * A new file (O_EXCL, 0600) with the bytes of `parts` (`len` in all, at most
   * MAX_CREATE). Waits for a free buffer when SLOTS batches are in flight; throws an
   * earlier step's failure.
   */
  async create(path: string, parts: readonly Uint8Array[], len: number): Promise<void> {
    if (this.failure) throw this.failure;
    if (len > MAX_CREATE) throw new SpoolError(`staging: a file of ${len} bytes is over ${MAX_CREATE}`);
    if (this.slot && this.used + len > MAX_CREATE) this.send();
    this.slot ??= await takeSlot();
    const off = this.used;
    for (const p of parts) {
      this.slot.set(p, this.used);
      this.used += p.byteLength;
    }
    this.push({ k: 'create', path, off, len });
  }

  rename(from: string, to: string): void {
    this.push({ k: 'rename', from, to });
  }

  unlink(path: string): void {
    this.push({ k: 'unlink', path });
  }

  private push(op: StageOp): void {
    this.ops.push(op);
    if (this.ops.length >= BATCH_OPS || this.used >= BATCH_BYTES) this.send();
  }

  /** hand over what is batched */
  send(): void {
    if (this.ops.length === 0) return;
    const ops = this.ops;
    const slot = this.slot;
    this.ops = [];
    this.slot = undefined;
    this.used = 0;
    let run: Promise<StageOpsResult>;
    if (this.where === 'caller') run = Promise.resolve(applyStageOps(ops, slot));
    else run = runOnWorker(ops, slot);
    const p: Promise<void> = run.then(
      (r) => {
        if (slot) giveSlot(slot);
        if (r.ok) this.missing += r.missing;
        else this.failure ??= opError(ops[r.error.index], r.error);
      },
      (err: unknown) => {
        if (slot) dropSlot();
        this.failure ??= err as Error;
      },
    ).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** send what is batched and wait until every step so far is done; throws the first failure */
  async flush(): Promise<void> {
    this.send();
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.failure) throw this.failure;
  }

  /** wait for every step sent, whatever the outcome (before removing what they write into); what is batched is dropped */
  async settle(): Promise<void> {
    this.ops = [];
    if (this.slot) giveSlot(this.slot);
    this.slot = undefined;
    this.used = 0;
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }
}
