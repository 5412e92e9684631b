// Young-generation collections paced by the bytes a session moves (promise 6: bounded
// memory). Every chunk of a bag that crosses the link is a short-lived Buffer whose bytes
// live outside V8's heap: the chunks read from a bag file, ssh2's packets, the frames.
// V8 frees those bytes only when a collection finds their small JavaScript wrappers dead,
// and with its default young generation (16 MiB of wrappers) and external-memory limit
// (64 MiB) tens of MiB of dead chunks wait for it: `mailbag sync` over ssh2 peaked at
// 150 MB relaying 10,160 messages, against 139–140 MB with a young collection every
// 4 MiB moved (bench/README.md, "relay"). Node can be started with a smaller young
// generation (`--max-semi-space-size`), but a forced command or a cron line runs the
// bin as it is, and `#!/usr/bin/env -S` is not portable; so the session asks for the
// collection itself. A young collection takes about 0.5 ms here: 4 MiB apart that is
// about 16 ms for 136 MB.
//
// `gc` is not exposed to scripts unless Node runs with --expose-gc; setting the flag at
// run time makes V8 install it in contexts created afterwards, and node:vm makes one.
// If that ever fails the pacing is a no-op and memory is left to V8 as before.

import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** bytes moved between two young collections */
export const YOUNG_GC_EVERY = 4 * 1024 * 1024;

type Gc = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let gc: Gc | null | undefined;

function collector(): Gc | null {
  if (gc !== undefined) return gc;
  try {
    setFlagsFromString('--expose-gc');
    const f: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    gc = typeof f === 'function' ? (f as Gc) : null;
  } catch {
    gc = null;
  }
  return gc;
}

/**
 * The young generation's size (V8's new_space: both semi-spaces) past which it may not
 * grow. V8 doubles it, up to 32 MiB here, as survivors add up; paced collections make
 * more survivors, and `mailbag serve` receiving 10,160 messages ended with all 32 MiB
 * touched while its heap held 8-23 MB (its peak RSS 142-150 MB against the 150 MB target).
 * `--max-semi-space-size` is read only when the heap is made; the growth factor is read
 * at each growth, so at this size it is set to 1. Starting a worker thread sets V8's flags
 * back to their defaults, so it is set again whenever the size is looked at.
 */
export const YOUNG_SPACE_CAP = 8 * 1024 * 1024;

/** Stop the young generation's growth once it has reached `cap` bytes. */
export function capYoungGeneration(cap: number = YOUNG_SPACE_CAP): boolean {
  try {
    const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    if (!young || young.space_size < cap) return false;
    setFlagsFromString('--semi-space-growth-factor=1');
    return true;
  } catch {
    return false;
  }
}

/** Counts bytes moved and runs a young collection every `every` of them. */
export class YoungGcPacer {
  private since = 0;
  /** collections run so far (for tests and traces) */
  runs = 0;

  constructor(private readonly every: number = YOUNG_GC_EVERY) {}

  moved(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    const f = collector();
    if (!f) return;
    // before too: a worker started since the last one set the growth factor back to its
    // default, and this collection could otherwise be the one that doubles the space
    capYoungGeneration();
    f({ type: 'minor' });
    this.runs++;
    capYoungGeneration();
  }
}

/**
 * V8's interrupt budget: the bytecode a function runs between two looks at whether to
 * optimize it (TurboFan, on V8's background threads). V8 11's default, 66 KiB, tiers up
 * every function a 1,000-message session runs a little: `mailbag serve` spent 150-250 ms
 * of its 600-700 ms of CPU compiling on those threads, for code that then ran for well
 * under a second (the session's and the stage worker's own threads took about as long
 * with or without it). At four times the default only the code that runs most is
 * optimized, later in a session: serve's CPU at 1,000 messages about 30 % less, and a
 * 10,160-message session, which runs long enough, optimizes what it runs most all the
 * same (bench/README.md, relay). V8's flags are the process's: every thread, from now on.
 */
export const INTERRUPT_BUDGET = 4 * 67_584;

/**
 * Ask V8 to tier up later (INTERRUPT_BUDGET); false where the flag cannot be set, or is
 * not to be: while the build makes the session bundle's code caches
 * (MAILBAG_MAKE_CODE_CACHE, scripts/bundle-front-doors.mjs). V8 stamps a code cache
 * with a hash of its flags when it is made, at the process's exit, and refuses it where
 * the flags differ when it is read, which is before anything runs: a serve cache made
 * with this flag set was refused at every serve's start (its bundle compiled afresh,
 * about 25 ms of serve's CPU in a one-job session).
 */
export function tierUpLater(): boolean {
  if (process.env.MAILBAG_MAKE_CODE_CACHE) return false;
  try {
    setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
    return true;
  } catch {
    return false;
  }
}
