// The stage worker thread (started by lib/session/stage-ops.ts). Three kinds of request:
// - a batch of file-system steps (renames into in/PEER/, removals, creates), applied in
//   the order they arrive, each with synchronous calls on this thread — no trip through
//   libuv's pool per call — and answered once all its steps are done;
// - a stager (lib/session/stage-bag.ts): an incoming bag read from its partial file as
//   the session's thread writes it (how far: shared memory), hashed, decompressed,
//   validated and its jobs created in HASH.d/, here, so that the session's thread only
//   reads the link; answered with the outcome once every byte is read;
// - a syncfs of the spool's file system: `sync -f DIR` run by a small shell this thread
//   starts at the first one and keeps (one fork of this ~100 MB process per session, not
//   one per bag, and never on the session's thread), answered with its exit status.
// Batches are applied between a stager's slices (it yields every few ms).
//
// Messages in:  { id, ops, data? } | { id, k: 'stage', req, words } | { id, k: 'syncfs', dir }
// Messages out: { id, result } | { id, stage } | { id, syncfs }, once per request

import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { applyStageOps, type StageOp, type StageOpsResult } from './stage-apply.js';
import { StageBatches, type BatchRunner } from './stage-batch.js';
import { DirectSink, PartialSource, SharedGrowth, stageFrom, toStageResult, type StageRequest, type StageResult } from './stage-bag.js';

export type ToStageWorker =
  | { id: number; k?: undefined; ops: StageOp[]; data?: Uint8Array }
  | { id: number; k: 'applied'; result: StageOpsResult }
  | { id: number; k: 'stage'; req: StageRequest; words: BigInt64Array }
  | { id: number; k: 'syncfs'; dir: string; timeoutMs: number }
  | { id: number; k: 'warm' };

export type SyncfsResult = { ok: true } | { ok: false; message: string };

export type FromStageWorker =
  | { id: number; result: StageOpsResult }
  | { id: number; stage: StageResult }
  | { id: number; syncfs: SyncfsResult }
  | { id: number; apply: StageOp[]; data?: Uint8Array };

const port = parentPort;
if (!port) throw new Error('lib/session/stage-worker.js runs in a worker thread only');

/** batches of creates handed to the session's thread, by id, until it answers */
const applying = new Map<number, (r: StageOpsResult) => void>();
let nextApply = 1;

/**
 * The session's thread makes a stager's creates (it only reads the link; this thread
 * hashes, decompresses and validates): the two share the work across two cores. Small
 * batches, so that a batch holds the link's reading up briefly (on ext4 right after many
 * removals a create can cost 1 ms).
 */
const onSessionThread: BatchRunner = (ops, data) =>
  new Promise<StageOpsResult>((resolve) => {
    const id = nextApply++;
    applying.set(id, resolve);
    port.postMessage((data ? { id, apply: ops, data } : { id, apply: ops }) satisfies FromStageWorker);
  });

/** steps in one batch of creates for the session's thread */
const APPLY_BATCH_OPS = 32;

port.on('message', (m: ToStageWorker) => {
  if (m.k === 'applied') {
    const done = applying.get(m.id);
    applying.delete(m.id);
    done?.(m.result);
  } else if (m.k === 'stage') {
    const growth = new SharedGrowth(m.words);
    growth.beat();
    const src = new PartialSource(m.req.part, m.req.size, growth, true);
    const sink = m.req.createsHere ? new DirectSink() : new StageBatches(onSessionThread, APPLY_BATCH_OPS);
    void toStageResult(stageFrom(src, m.req, sink, undefined, () => growth.beat())).then((stage) => port.postMessage({ id: m.id, stage } satisfies FromStageWorker));
  } else if (m.k === 'syncfs') {
    syncfs(m.dir, m.timeoutMs, (syncfs) => port.postMessage({ id: m.id, syncfs } satisfies FromStageWorker));
  } else if (m.k === 'warm') {
    // a bag that will be made durable with a syncfs is on its way: the helper's start
    // (a spawn, 5-37 ms of this thread) overlaps its bytes instead of delaying its commit
    helper ??= startHelper();
    port.postMessage({ id: m.id, syncfs: { ok: true } } satisfies FromStageWorker);
  } else {
    port.postMessage({ id: m.id, result: applyStageOps(m.ops, m.data) } satisfies FromStageWorker);
  }
});

/**
 * The syncfs helper: a `sh` loop reading one directory a line and answering each with the
 * exit status of `sync -f DIR` (127 where `sync` is missing). It ends when its input
 * closes (this thread or process ends). Requests are answered in order.
 *
 * The loop is not a child of this process: the shell this thread spawns starts it in the
 * background, says its pid ("pid N") and exits at once (reaped here while this thread
 * runs). A child's exit is collected by the event loop of the thread that spawned it, so
 * a loop spawned directly stayed a zombie of the whole process once this thread was
 * terminated (hung, or stopped at the session's end) until the process exited; now its
 * input closes with this thread, it ends, and init collects it. The loop talks through
 * the child's fd 3 (a socket both ways): Node closes a child's stdin when the child exits.
 */
interface Helper {
  child: ChildProcess;
  /** requests out, answers in: the child's fd 3 */
  io: Duplex;
  /** the loop's pid, once the shell has said it */
  pid: number | undefined;
  waiting: { done: (r: SyncfsResult) => void; timer: NodeJS.Timeout }[];
  out: string;
  dead: string | undefined;
}

const HELPER_LOOP = 'while IFS= read -r d; do sync -f "$d" >/dev/null 2>&1; echo $?; done';
// the loop is the script's $0 (a background list's stdin would be /dev/null: fd 3 is
// redirected explicitly)
const HELPER_SCRIPT = '/bin/sh -c "$0" <&3 >&3 3<&- & echo "pid $!" >&3';
let helper: Helper | undefined;

function startHelper(): Helper {
  const child = spawn('/bin/sh', ['-c', HELPER_SCRIPT, HELPER_LOOP], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const io = child.stdio[3] as Duplex;
  const h: Helper = { child, io, pid: undefined, waiting: [], out: '', dead: undefined };
  const die = (why: string): void => {
    if (h.dead) return;
    h.dead = why;
    if (helper === h) helper = undefined;
    for (const w of h.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.done({ ok: false, message: `the syncfs helper ${why}` });
    }
    killHelper(h);
  };
  child.on('error', (err) => die(`failed: ${err.message}`));
  // the shell exits once it has started the loop; the loop's end closes fd 3
  child.on('exit', (code, signal) => {
    if (code !== 0) die(`exited (${signal ?? code})`);
  });
  io.on('error', (err) => die(`failed: ${err.message}`));
  io.on('close', () => die('exited'));
  io.setEncoding('utf8');
  io.on('data', (text: string) => {
    h.out += text;
    let nl: number;
    while ((nl = h.out.indexOf('\n')) >= 0) {
      const line = h.out.slice(0, nl);
      h.out = h.out.slice(nl + 1);
      if (line.startsWith('pid ')) {
        h.pid = Number(line.slice(4)) || undefined;
        continue;
      }
      const w = h.waiting.shift();
      if (!w) continue;
      clearTimeout(w.timer);
      w.done(line === '0' ? { ok: true } : { ok: false, message: `sync -f exited with status ${line}` });
    }
  });
  // not what keeps this thread (or the process) alive
  child.unref();
  (io as unknown as { unref?: () => void }).unref?.();
  return h;
}

/** Take a helper down: the loop by its pid while fd 3 is open (it is alive: the pid is its own), and the shell. */
function killHelper(h: Helper): void {
  if (h.pid !== undefined && !h.io.destroyed) {
    try {
      process.kill(h.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  h.child.kill('SIGKILL');
  h.io.destroy();
}

/** `sync -f dir` through the helper; a directory name with a line break goes to a child of its own */
function syncfs(dir: string, timeoutMs: number, done: (r: SyncfsResult) => void): void {
  if (dir.includes('\n')) {
    const child = spawn('sync', ['-f', dir], { stdio: 'ignore', timeout: timeoutMs });
    child.on('error', (err) => done({ ok: false, message: err.message }));
    child.on('exit', (code, signal) => done(code === 0 ? { ok: true } : { ok: false, message: `sync -f exited (${signal ?? code})` }));
    return;
  }
  const h = (helper ??= startHelper());
  // a request past its time takes the helper down (its other requests fail too: the
  // caller then fsyncs each file)
  const timer = setTimeout(() => {
    if (helper === h) helper = undefined;
    killHelper(h);
  }, timeoutMs);
  h.waiting.push({ done, timer });
  h.io.write(`${dir}\n`);
}

// loaded: every module this thread needs at its start is in. stage-ops.ts's
// prestartStageWorker changes V8's flags only after this (it says why)
const loaded = (workerData as { loaded?: unknown } | null | undefined)?.loaded;
if (loaded instanceof Int32Array) {
  Atomics.store(loaded, 0, 1);
  Atomics.notify(loaded, 0);
}
