// The runner's record of one received job: `run/PEER/ID` in the spool, written only
// through the spool's commit function (tmp, fsync, rename, directory fsync). It says
// whether the job was handed over (started), what each transaction's recipients came
// to (accepted, failed with the notice sent or not), when to try again, and whether
// the job failed for good. Format: `mailbag-run 1\n` + one line of JSON.

import { readdir, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { MailbagError } from '../errors.js';
import type { Spool } from '../spool/index.js';

export const RUN_MAGIC_LINE = 'mailbag-run 1\n';

export interface FailedRecipient {
  address: string;
  status: string;
  diagnostic: string;
}

export interface TxProgress {
  /** recipients the MTA accepted: never offered this message again */
  accepted: string[];
  /** recipients refused for good */
  failed: FailedRecipient[];
  /** the notice for `failed` went out (or there is nobody to send it to) */
  noticed: boolean;
}

export interface RunState {
  /** attempts begun so far */
  attempts: number;
  /** ISO time of the latest hand-over; present from just before it until its outcome is recorded */
  startedAt?: string | undefined;
  /** ISO time before which the job is not tried again (backoff) */
  nextAttempt?: string | undefined;
  /** why the latest attempt did not finish */
  lastError?: string | undefined;
  /** per transaction index */
  tx: Record<string, TxProgress>;
  /** ISO time `mailbag retry` put the job back: its queue lifetime counts from here */
  retriedAt?: string | undefined;
  /**
   * a notice the MTA deferred (exit 75, a 4xx reply): since when (ISO; or since the last
   * refusal that joined the owed notices), how many times, and when it may be tried again
   * (the job's backoff); gone once no notice is owed
   */
  noticeRetry?: { since: string; attempts: number; nextAttempt: string } | undefined;
  /** set when the job failed for good (then it is, or is about to be, in failed/) */
  failed?: {
    reason: string;
    at: string;
    status: string;
    /** the notice went out (or there is nobody to send it to) */
    noticeSent: boolean;
    /** ISO time the notice was given up: the MTA deferred it for longer than queue_lifetime */
    noticeGivenUp?: string | undefined;
  } | undefined;
}

/** The longest retry delay (lib/runner backoffMs: 5 min, doubling, at most this). */
export const MAX_BACKOFF_MS = 4 * 3_600_000;

/**
 * Whether a retry time (ISO) has come at `now`. One further ahead than the longest backoff
 * was set by a clock that has gone back since (a wrong RTC corrected, an admin's date):
 * due now, not when this clock catches up with it. Unreadable: due.
 */
export function retryTimeCome(at: string | undefined, now: Date): boolean {
  if (at === undefined) return true;
  const wait = Date.parse(at) - now.getTime();
  return !(wait > 0) || wait > MAX_BACKOFF_MS;
}

export function emptyState(): RunState {
  return { attempts: 0, tx: {} };
}

export function statePath(spool: Spool, peer: string, id: string): string {
  return spool.path('run', peer, id);
}

export async function readState(spool: Spool, peer: string, id: string): Promise<RunState | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(spool, peer, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!text.startsWith(RUN_MAGIC_LINE)) {
    const first = text.slice(0, text.indexOf('\n') >>> 0).slice(0, 40);
    throw new MailbagError('spool', `${statePath(spool, peer, id)}: not a runner record of a version this mailbag knows (${JSON.stringify(first)})`);
  }
  // cut short or corrupt (records are committed whole: a disk or a hand did this): a spool
  // failure naming the file, which the run reports (exit 75) while the job waits, not an
  // "unexpected error" retried silently at every run
  let v: RunState;
  try {
    v = JSON.parse(text.slice(RUN_MAGIC_LINE.length)) as RunState;
    if (typeof v !== 'object' || v === null || Array.isArray(v) || typeof v.attempts !== 'number') throw new Error('not a record object');
  } catch (err) {
    throw new MailbagError('spool', `${statePath(spool, peer, id)}: runner record does not read (cut short or corrupt: ${(err as Error).message}); remove it to run the job afresh (recipients it recorded as accepted would get the message again)`, { cause: err });
  }
  v.tx ??= {};
  return v;
}

export async function writeState(spool: Spool, peer: string, id: string, state: RunState): Promise<void> {
  await spool.ensureDir('run');
  await spool.ensureDir('run', peer);
  await spool.commitFile(`run/${peer}/${id}`, Buffer.from(RUN_MAGIC_LINE + JSON.stringify(state) + '\n'), { label: 'run' });
}

export async function removeState(spool: Spool, peer: string, id: string): Promise<void> {
  try {
    await unlink(statePath(spool, peer, id));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return;
  }
  await spool.fsyncDir('run', peer);
}

/**
 * The record that a batch of jobs is being handed over: `run/PEER/started.PID.N`, one
 * job id a line, committed before the first of them goes to the MTA and removed after
 * the batch's removals are durable. One commit per batch instead of one per job: a
 * journal left by a dead runner names jobs that may have reached the MTA (the
 * documented window); they are simply run again.
 */
let batchSeq = 0;

export async function startBatch(spool: Spool, peer: string, ids: string[]): Promise<string> {
  batchSeq++;
  const name = `started.${process.pid}.${batchSeq}`;
  await spool.ensureDir('run');
  await spool.ensureDir('run', peer);
  await spool.commitFile(`run/${peer}/${name}`, Buffer.from(`mailbag-started 1\n${ids.join('\n')}\n`), { label: 'run' });
  return name;
}

export async function endBatch(spool: Spool, peer: string, name: string): Promise<void> {
  await unlink(spool.path('run', peer, name)).catch(() => undefined);
  await spool.fsyncDir('run', peer);
}

/** Is this a batch journal's file name? */
export function isBatchName(name: string): boolean {
  return /^started\.\d+\.\d+$/.test(name);
}

/** pruneStale's stamp: run/DIR.pruned, beside the records' directory */
const PRUNE_EVERY_MS = 3_600_000;

/**
 * The standalone rsmtp's and rmail's records (run/DIR: rsmtp-stdin, rmail-stdin) older
 * than the ledger's retention, counted back from the newest record when that is older
 * than now (a clock that jumped forward alone makes nothing old): left by a batch cut
 * short that nobody ran whole, a batch without QUIT, or a retry the caller gave up. A
 * caller retries well within it (Exim's retry rules, Postfix's maximal_queue_lifetime,
 * default 4–5 days, against 14).
 */
export async function pruneStale(spool: Spool, dir: string, retentionMs: number, now: Date): Promise<void> {
  // at most once an hour (the stamp's mtime): records of batches without QUIT stay for
  // the retention, one per transaction, and need not all be looked at by every start. A
  // stamp dated ahead of the clock (set back since) does not hold pruning off.
  const stamp = spool.path('run', `${dir}.pruned`);
  const last = await stat(stamp).catch(() => undefined);
  if (last && last.mtimeMs <= now.getTime() && now.getTime() - last.mtimeMs < PRUNE_EVERY_MS) return;
  let names: string[];
  try {
    names = await readdir(spool.path('run', dir));
  } catch {
    return;
  }
  await writeFile(stamp, '', { mode: 0o600 })
    .then(() => utimes(stamp, now, now))
    .catch(() => undefined);
  const aged: Array<[string, number]> = [];
  let newest = Number.NEGATIVE_INFINITY;
  for (const name of names) {
    const path = spool.path('run', dir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st) continue;
    if (st.mtimeMs > now.getTime()) {
      // written by a clock set back since: its age counts from now, not from then
      await utimes(path, now, now).catch(() => undefined);
      newest = now.getTime();
      continue;
    }
    aged.push([path, st.mtimeMs]);
    newest = Math.max(newest, st.mtimeMs);
  }
  // as the session ledger's (dbdddfa): the age counts from the newest record when the
  // clock is ahead of it, so a clock that jumped forward (a board without an RTC that ran
  // before NTP set it) cannot make a pending retry's records look old (review9a's E4)
  const cutoff = Math.min(now.getTime(), newest) - retentionMs;
  let removed = 0;
  for (const [path, mtime] of aged) {
    if (mtime >= cutoff) continue;
    await unlink(path).catch(() => undefined);
    removed++;
  }
  if (removed) await spool.fsyncDir('run', dir).catch(() => undefined);
}
