// A dead session's last steps, finished while no session with the peer runs
// (docs/spool.md S4 and S7). The receiver acknowledges a bag right after its ledger line
// and moves the bag's jobs from bags/in/PEER/HASH.d/ into in/PEER/ afterwards; the sender
// removes acknowledged jobs from out/PEER/ after the ACK. A process killed in between
// (SIGKILL, a power cut) leaves that work to the next session with PEER, which on a site
// polled rarely may be hours away: committed, acknowledged jobs not delivered meanwhile.
// The runner (`mailbag run`, and the run step of serve, sync and dispatch) therefore,
// holding the peer's runner lock, takes the peer's session lock without waiting — never while a live session holds it —
// and runs the store's recoveries (SessionStore.open), then lets go and delivers.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import { asMailbagError } from '../errors.js';
import { faultPoint } from '../spool/fault.js';
import { parseLock } from '../spool/lock.js';
import { JOB_ID_RE } from '../job/header.js';
import type { Spool } from '../spool/spool.js';

const STAGED_RE = /^([0-9a-f]{64})\.d$/;
const ACKED_RE = /^([0-9a-f]{64})\.acked$/;

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** What a dead session may have left for PEER: staged bags (HASH.d/) and acknowledged bags (HASH.acked). */
export interface Leftovers {
  /** hashes of bags/in/PEER/HASH.d/ (committed when the ledger has the hash: S7; else S6) */
  staged: string[];
  /** hashes of bags/out/PEER/HASH.acked (S4) */
  acked: string[];
}

/** Two directory reads: what there is to finish for PEER (usually nothing). */
export async function leftovers(root: string, peer: string): Promise<Leftovers> {
  const staged = (await names(join(root, 'bags', 'in', peer))).flatMap((n) => STAGED_RE.exec(n)?.[1] ?? []);
  const acked = (await names(join(root, 'bags', 'out', peer))).flatMap((n) => ACKED_RE.exec(n)?.[1] ?? []);
  return { staged, acked };
}

/** The hashes of `bags` that the ledger of PEER holds, read only (no torn-line cut, no pruning). */
async function committedOf(root: string, peer: string, bags: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  if (bags.length === 0) return out;
  let text: string;
  try {
    text = await readFile(join(root, 'ledger', peer), 'utf8');
  } catch {
    return out;
  }
  // a line counts only with its newline (a torn last line is not a commit)
  for (const line of text.split('\n').slice(1, -1)) {
    const bag = line.split(' ')[1];
    if (bag !== undefined && bags.includes(bag)) out.add(bag);
  }
  return out;
}

/** Committed but not yet moved, and acknowledged but not yet removed: what `mailbag status` shows. */
export interface Unfinished {
  /** S7: jobs of committed bags still in bags/in/PEER/HASH.d/ (received and acknowledged, not yet in in/PEER/) */
  unmoved: UnfinishedJobs;
  /** S4: jobs still in out/PEER/ that the peer has acknowledged (they no longer wait to be sent) */
  acked: UnfinishedJobs;
}

export interface UnfinishedJobs {
  bags: number;
  jobs: number;
  bytes: number;
  /** the smallest job id (ids sort by creation time), undefined when there are none */
  oldest: string | undefined;
  /** the earliest modification time among the job files (ms since 1970), null when there are none */
  oldestWrittenMs: number | null;
}

/** Read only, no lock: what a dead session left for PEER. A live session's bags show here too, for a moment. */
export async function inspectUnfinished(root: string, peer: string): Promise<Unfinished> {
  const left = await leftovers(root, peer);
  const none = (): UnfinishedJobs => ({ bags: 0, jobs: 0, bytes: 0, oldest: undefined, oldestWrittenMs: null });
  const u: Unfinished = { unmoved: none(), acked: none() };
  const count = (g: UnfinishedJobs, id: string, s: { size: number; mtimeMs: number }): void => {
    g.jobs++;
    g.bytes += s.size;
    if (g.oldest === undefined || id < g.oldest) g.oldest = id;
    if (g.oldestWrittenMs === null || s.mtimeMs < g.oldestWrittenMs) g.oldestWrittenMs = s.mtimeMs;
  };
  const size = async (path: string): Promise<{ size: number; mtimeMs: number } | undefined> => {
    try {
      return await stat(path);
    } catch {
      return undefined;
    }
  };
  for (const bag of await committedOf(root, peer, left.staged)) {
    const dir = join(root, 'bags', 'in', peer, `${bag}.d`);
    let any = false;
    for (const n of await names(dir)) {
      if (!JOB_ID_RE.test(n)) continue;
      const s = await size(join(dir, n));
      if (s === undefined) continue;
      any = true;
      count(u.unmoved, n, s);
    }
    if (any) u.unmoved.bags++;
  }
  for (const bag of left.acked) {
    const list = await readFile(join(root, 'bags', 'out', peer, `${bag}.acked`), 'utf8').catch(() => '');
    let any = false;
    for (const id of list.split('\n').slice(2)) {
      if (!JOB_ID_RE.test(id)) continue;
      const s = await size(join(root, 'out', peer, id));
      if (s === undefined) continue;
      any = true;
      count(u.acked, id, s);
    }
    if (any) u.acked.bags++;
  }
  return u;
}

export interface IdleRecovery {
  peer: string;
  /** clean: nothing to finish; busy: a session (or another host's lock) holds session-PEER; recovered: finished */
  state: 'clean' | 'busy' | 'recovered';
  /** jobs of committed bags moved into in/PEER/ */
  moved: number;
  /** acknowledged jobs removed from out/PEER/ */
  removed: number;
  /** why it was busy (the lock's holder) */
  reason?: string;
}

/**
 * Finish S7 (committed jobs into in/PEER/) and S4 (acknowledged jobs out of out/PEER/)
 * for PEER when no session with it runs: the session lock taken without waiting (a live
 * holder's lock is never broken; a dead one's is, lib/spool/lock.ts), the store's own
 * recoveries (SessionStore.open, the same steps a session starts with, the ledger's
 * pruning included), the lock released. Nothing to finish: two directory reads, no lock.
 */
export async function recoverIdlePeer(config: Config, spool: Spool, peer: string, o: { log?: (line: string) => void } = {}): Promise<IdleRecovery> {
  const left = await leftovers(spool.root, peer);
  if (left.staged.length === 0 && left.acked.length === 0) return { peer, state: 'clean', moved: 0, removed: 0 };
  let lock;
  try {
    // a junk lock file taken over is said where the command says its other lines
    lock = await spool.lock(`session-${peer}`, o.log ? { log: o.log } : {});
  } catch (err) {
    const e = asMailbagError(err);
    if (e.code !== 'locked') throw e;
    // a file there that is not a lock is no session: nothing would ever finish these steps
    const text = await readFile(spool.path('locks', `session-${peer}.lock`), 'utf8').catch(() => undefined);
    if (text !== undefined && parseLock(text) === undefined) throw e;
    return { peer, state: 'busy', moved: 0, removed: 0, reason: e.message };
  }
  try {
    // killed here or below (test/fault/runner-idle-recovery.test.ts), the lock is a dead
    // holder's: the next session or run breaks it and finishes the same steps
    faultPoint('run-idle-after-lock');
    // counted under the lock, before the store finishes them (for the log line)
    const u = await inspectUnfinished(spool.root, peer);
    const { storeFor } = await import('./index.js');
    // on this thread: a few renames and unlinks, not worth the stage worker's start
    const store = storeFor(config, spool, peer, config.peers[peer], { threads: 'caller' });
    await store.open();
    faultPoint('run-idle-before-release');
    return { peer, state: 'recovered', moved: u.unmoved.jobs, removed: u.acked.jobs };
  } finally {
    await lock.release();
  }
}
