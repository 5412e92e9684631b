// StageBatches: a user's file-system steps of staging (creates of staged jobs with their
// bytes, renames, removals) gathered into batches and handed to whatever applies them
// (lib/session/stage-ops.ts: the stage worker or this thread; lib/session/stage-worker.ts:
// the session's thread, for a stager on the worker), each batch's bytes in one of a few
// shared buffers that are reused. flush() resolves only when every step sent before it is
// complete, and rejects with the first failure; the bytes in flight are bounded (SLOTS ×
// MAX_CREATE). This module starts no thread: the stage worker loads it too.

import { SpoolError } from '../errors.js';
import type { StageOp, StageOpsResult } from './stage-apply.js';
import { MAX_SINK_CREATE } from './stage-bag.js';

/** bytes of job data from which a batch is sent */
const BATCH_BYTES = 256 * 1024;
/** the largest file create() takes, and the size of each shared buffer */
export const MAX_CREATE = MAX_SINK_CREATE;
/** steps in one batch, at most */
const BATCH_OPS = 128;
/**
 * batches with data in flight at once, in the whole process: each holds one of this many
 * shared buffers of MAX_CREATE (2 MiB in all, made once and reused: job bytes never pile
 * up as garbage in either thread's heap), and a create waits for a free one
 */
const SLOTS = 4;

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

/** an Error shaped like the one the failed system call threw (its `code` decides spool-full) */
function opError(op: StageOp | undefined, e: { code: string | undefined; message: string }): Error {
  const what = !op ? 'a staging step' : op.k === 'create' ? `creating ${op.path}` : op.k === 'rename' ? `renaming ${op.from}` : `removing ${op.path}`;
  const err = new SpoolError(`${what}: ${e.message}`, { cause: Object.assign(new Error(e.message), { code: e.code }) });
  return err;
}

/** applies one batch somewhere and answers with its outcome */
export type BatchRunner = (ops: StageOp[], data: Uint8Array | undefined) => Promise<StageOpsResult>;

/**
 * One user's steps (a stager, one bag's moves, one bag's removals): batched, sent to the
 * shared worker (or applied here), the first failure kept for flush().
 */
export class StageBatches {
  private ops: StageOp[] = [];
  /** the shared buffer the batched creates' bytes are in */
  private slot: Uint8Array | undefined;
  private used = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | undefined;
  /** unlinks of files that were not there */
  missing = 0;

  /** `run` applies one batch (here, on the stage worker, or on the session's thread); `batchOps`: steps in one batch, at most */
  constructor(private readonly run: BatchRunner, private readonly batchOps = BATCH_OPS) {}

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
    if (this.ops.length >= this.batchOps || this.used >= BATCH_BYTES) this.send();
  }

  /** hand over what is batched */
  send(): void {
    if (this.ops.length === 0) return;
    const ops = this.ops;
    const slot = this.slot;
    this.ops = [];
    this.slot = undefined;
    this.used = 0;
    const p: Promise<void> = this.run(ops, slot).then(
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
