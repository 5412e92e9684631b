// The failed queue as the admin sees it: `mailbag failed` lists jobs with the reason
// the runner recorded; `mailbag retry` puts one back into in/PEER with its failure
// cleared but its progress kept, so recipients already accepted are not sent the
// message again, and its queue lifetime starts over.

import { readdir } from 'node:fs/promises';
import { asMailbagError, MailbagError, SpoolError } from '../errors.js';
import { isJobId, isName } from '../job/header.js';
import type { JobRef, Spool } from '../spool/index.js';
import { readState, writeState, emptyState, type RunState } from './state.js';

export interface FailedJob {
  peer: string;
  id: string;
  created: string;
  command: string;
  sender: string;
  recipients: string[];
  reason: string;
  failedAt: string | undefined;
  noticeSent: boolean | undefined;
  /** ISO time the notice was given up (the MTA deferred it for longer than queue_lifetime) */
  noticeGivenUp?: string;
  /** a notice the MTA deferred: since when, and when it is tried again */
  noticeDeferredSince?: string;
  noticeNextAttempt?: string;
}

/** What the record says of the notice, for FailedJob (fields present only when set). */
function noticeFields(state: RunState | undefined): Pick<FailedJob, 'noticeSent' | 'noticeGivenUp' | 'noticeDeferredSince' | 'noticeNextAttempt'> {
  const f = state?.failed;
  const out: Pick<FailedJob, 'noticeSent' | 'noticeGivenUp' | 'noticeDeferredSince' | 'noticeNextAttempt'> = { noticeSent: f?.noticeSent };
  if (f?.noticeGivenUp) out.noticeGivenUp = f.noticeGivenUp;
  if (f && !f.noticeSent && state?.noticeRetry) {
    out.noticeDeferredSince = state.noticeRetry.since;
    if (!f.noticeGivenUp) out.noticeNextAttempt = state.noticeRetry.nextAttempt;
  }
  return out;
}

/** Failed jobs of one peer or all, oldest first within a peer. */
export async function listFailed(spool: Spool, peer?: string): Promise<FailedJob[]> {
  const out: FailedJob[] = [];
  for await (const j of eachFailed(spool, peer)) out.push(j);
  return out;
}

/**
 * The same, one at a time, as each is read: what a caller holds does not grow with the
 * failed queue but for its list of names (`mailbag failed` writes each as it comes).
 */
export async function* eachFailed(spool: Spool, peer?: string): AsyncGenerator<FailedJob> {
  const peers = peer !== undefined ? [peer] : await spool.peers('failed');
  // every peer's names listed before the first job is given: a directory that cannot be
  // listed fails the listing before anything of it is written (not after the first
  // peer's jobs, a JSON array left open). Only the names are held (sorted: oldest
  // first), each job's ref made as it comes: a whole list of refs costs ~600 bytes a
  // job, 12 MB for 20,000
  const lists: Array<[string, string[]]> = [];
  for (const p of peers) lists.push([p, await failedIds(spool, p)]);
  for (const [p, ids] of lists) {
    for (const id of ids) {
      const ref = spool.ref('failed', p, id);
      // a record that does not read (cut short, another version) is said as the reason:
      // it holds the reason and whether the sender was told
      let recordProblem: string | undefined;
      const state = await readState(spool, p, ref.id).catch((err: unknown) => void (recordProblem = (err as Error).message));
      let header;
      try {
        header = (await spool.readJob(ref)).header;
      } catch (err) {
        yield { peer: p, id: ref.id, created: '', command: '?', sender: '', recipients: [], reason: recordProblem ?? state?.failed?.reason ?? (err as Error).message, failedAt: state?.failed?.at, ...noticeFields(state) };
        continue;
      }
      yield {
        peer: p,
        id: ref.id,
        created: header.created,
        command: header.command,
        sender: header.sender,
        recipients: header.recipients.length > 0 ? header.recipients : header.args,
        reason: recordProblem ?? state?.failed?.reason ?? 'no reason recorded',
        failedAt: state?.failed?.at,
        ...noticeFields(state),
      };
    }
  }
}

/** The ids of failed/PEER/, sorted; none when it does not exist. */
async function failedIds(spool: Spool, peer: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(spool.path('failed', peer));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new SpoolError(`listing ${spool.path('failed', peer)}: ${(err as Error).message}`, { cause: err });
  }
  return names.filter(isJobId).sort();
}

/**
 * Find a failed job by `ID` or `PEER/ID`; `spool` undefined: a spool not made yet, which
 * has none (the name is still checked).
 */
export async function findFailed(spool: Spool | undefined, name: string): Promise<JobRef> {
  const slash = name.indexOf('/');
  const peer = slash >= 0 ? name.slice(0, slash) : undefined;
  const id = slash >= 0 ? name.slice(slash + 1) : name;
  if (!isJobId(id) || (peer !== undefined && !isName(peer))) throw new MailbagError('usage', `${JSON.stringify(name)} is not a job id (or PEER/ID)`);
  if (spool) {
    for (const p of peer !== undefined ? [peer] : await spool.peers('failed')) {
      const ref = (await spool.listJobs('failed', p)).find((r) => r.id === id);
      if (ref) return ref;
    }
  }
  throw new MailbagError('usage', `no failed job ${name} (see mailbag failed)`);
}

/**
 * How long `mailbag retry` waits for a runner of the job's peer (which holds its runner
 * lock for a whole run) before it gives up with exit 75.
 */
export const RETRY_LOCK_WAIT_MS = 10_000;

/**
 * Put a failed job back for the runner: clear the failure and the recipients that
 * failed (they are tried again), keep those accepted, restart the lifetime. The state
 * is written before the move, so a crash between leaves a failed job that simply
 * fails again or is retried again. Done under the peer's runner lock (waiting at most
 * `lockWaitMs`): a runner at work on the peer reads and saves the records of its failed
 * jobs (their notices) and finishes a job in in/ whose record says failed, so without
 * the lock it would save the failure again over the retry and move the job back.
 */
export async function retryFailed(spool: Spool, ref: JobRef, now = new Date(), o: { lockWaitMs?: number } = {}): Promise<JobRef> {
  let lock;
  try {
    lock = await spool.lock(`runner.${ref.peer}`, { wait: true, timeoutMs: o.lockWaitMs ?? RETRY_LOCK_WAIT_MS });
  } catch (err) {
    const e = asMailbagError(err);
    if (e.code !== 'locked') throw e;
    throw new SpoolError(`${ref.peer}/${ref.id} is not put back: a runner of ${ref.peer} is at work (${e.message}); try again when it is done`, { code: 'locked', cause: e });
  }
  try {
    // another retry may have put it back while we waited
    if (!(await spool.listJobs('failed', ref.peer)).some((r) => r.id === ref.id)) {
      throw new MailbagError('usage', `no failed job ${ref.peer}/${ref.id} (see mailbag failed)`);
    }
    const state = (await readState(spool, ref.peer, ref.id)) ?? emptyState();
    state.failed = undefined;
    state.nextAttempt = undefined;
    state.startedAt = undefined;
    state.retriedAt = now.toISOString();
    // the notices owed were for the failures cleared here: a new failure owes a new one
    state.noticeRetry = undefined;
    for (const p of Object.values(state.tx)) {
      p.failed = [];
      p.noticed = false;
    }
    await writeState(spool, ref.peer, ref.id, state);
    // a job that failed on its way out (expired, too big or refused by the peer) goes back
    // to out/PEER to be sent again; one that came in goes back to in/PEER for the runner
    const { header } = await spool.readJob(ref);
    const outbound = header.to === ref.peer && header.from !== ref.peer;
    return await spool.moveJob(ref, outbound ? 'out' : 'in');
  } finally {
    await lock.release();
  }
}
