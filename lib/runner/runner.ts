// The runner: what uuxqt is to UUCP. It takes the jobs of each peer's inbound queue
// (in/PEER), checks the command against that peer's whitelist, and runs it: `rmail`
// and `rsmtp` in-process through the configured delivery method, admin actions as
// argv with no shell. Before a job is handed over its record says "started"; after,
// the outcome per recipient. Exit 0 / accepted is done; 75 / temporary is retried with
// backoff; anything else, a forbidden command or a job older than queue_lifetime fails
// for good: the job moves to failed/PEER and the sender gets an RFC 3464 notice, sent
// with the null sender, never to <>. The crash windows are listed in docs/spool.md.

import { constants } from 'node:fs';
import { access, readdir, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Config, PeerConfig } from '../config/types.js';
import { asMailbagError, MailbagError, SpoolError } from '../errors.js';
import { isJobId, type JobHeader } from '../job/header.js';
import { indexBsmtp } from '../deliver/bsmtp-index.js';
import { Deliverer } from '../deliver/index.js';
import { paramValue, xtextDecode, type Transaction } from '../deliver/message.js';
import type { RecipientResult } from '../deliver/result.js';
import { rmailTransaction } from '../deliver/rmail.js';
import { classifyExit, runChild } from '../deliver/sendmail.js';
import type { NoticeRecipient } from '../notice/dsn.js';
import { sendNotice, type NoticeRequest } from './notify.js';
import { inspectUnfinished, leftovers, recoverIdlePeer, type Leftovers } from '../session/idle-recovery.js';
import { faultPoint } from '../spool/fault.js';
import { parseLock } from '../spool/lock.js';
import { Spool, spoolErrorFrom, type JobRef, type OpenJob } from '../spool/index.js';
import { recordedDiagnostic, RecordReserve, recordSizes } from './reserve.js';
import { emptyState, endBatch, isBatchName, MAX_BACKOFF_MS, readState, RUN_MAGIC_LINE, removeState, retryTimeCome, startBatch, writeState, type RunState, type TxProgress } from './state.js';
import { peerText } from '../session/messages.js';

export const BUILTIN_COMMANDS = ['rmail', 'rsmtp'] as const;

/** Jobs per batch journal (one commit and one directory fsync per batch). */
export const BATCH = 32;

/** Retry delays: 5 min, doubling, at most 4 h (uuxqt retries on its next run; we pace it). */
export function backoffMs(attempts: number): number {
  return Math.min(5 * 60_000 * 2 ** Math.max(0, attempts - 1), MAX_BACKOFF_MS);
}

/** Whether a notice the MTA deferred may be tried again at `now` (its backoff has passed). */
export function noticeDue(state: RunState, now: Date): boolean {
  return !state.noticeRetry || retryTimeCome(state.noticeRetry.nextAttempt, now);
}

/** Record that the MTA deferred a notice: the next try waits as a job's retry would. */
function deferNotice(state: RunState, now: Date): NonNullable<RunState['noticeRetry']> {
  const r = state.noticeRetry ?? { since: fmt(now), attempts: 0, nextAttempt: fmt(now) };
  // deferred "since" a time after now: the clock has gone back since; its lifetime counts
  // from now, not from a time this clock has not reached (it would never be given up)
  if (Date.parse(r.since) > now.getTime()) r.since = fmt(now);
  r.attempts++;
  r.nextAttempt = fmt(new Date(now.getTime() + backoffMs(r.attempts)));
  state.noticeRetry = r;
  return r;
}

/**
 * The largest record finishFailedNotices writes for `state` (the room it holds first):
 * the record now, and what the notices add (noticed, noticeSent, a noticeRetry, a
 * noticeGivenUp: under 300 bytes).
 */
function noticeRecordBound(state: RunState): number {
  return Buffer.byteLength(RUN_MAGIC_LINE + JSON.stringify(state) + '\n') + 1024;
}

/** Whether a transaction's refused recipients still wait for their notice. */
function noticeOwed(state: RunState): boolean {
  return Object.values(state.tx).some((p) => p.failed.length > 0 && !p.noticed);
}

export interface RunOptions {
  config: Config;
  /** an open spool (default: Spool.open(config.spool)) */
  spool?: Spool;
  /** only these peers (default: every peer with an inbound queue) */
  peers?: string[];
  /** ignore the backoff: try every job now */
  force?: boolean;
  /** environment of the MTA commands (default process.env) */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** one line per job outcome */
  log?: (line: string) => void;
}

export interface RunSummary {
  done: number;
  retry: number;
  failed: number;
  /** not due yet, locked, or of an unknown peer */
  skipped: number;
  /**
   * failures of the run that leave jobs undelivered, present only when there are any:
   * a peer whose killed session could not be finished (docs/spool.md S4, S7: its
   * committed jobs stay in bags/in/PEER/), a peer with jobs our own spool kept from
   * running (a runner record it cannot read, a full disk; one entry per peer), and from
   * lib/session runReceivedJobs, a runner that failed as a whole
   */
  unfinished?: { peer: string; error: MailbagError }[];
  /**
   * notices of failed jobs given up in this run, present only when there are any: the MTA
   * deferred them for longer than queue_lifetime (each said once, recorded in the job's
   * state: `mailbag failed` shows "notice given up")
   */
  noticesGivenUp?: number;
}

/** What the whitelist says about a command for a peer: a built-in, an argv, or no. */
export function resolveAction(peer: PeerConfig | undefined, command: string): { kind: 'builtin'; name: 'rmail' | 'rsmtp' } | { kind: 'argv'; argv: string[] } | { kind: 'forbidden' } {
  // the whitelist is `accept`; an admin action of the same name replaces a built-in
  if (!peer || !peer.accept.includes(command)) return { kind: 'forbidden' };
  if (Object.hasOwn(peer.actions, command) && peer.actions[command]!.length > 0) return { kind: 'argv', argv: peer.actions[command]! };
  if ((BUILTIN_COMMANDS as readonly string[]).includes(command)) return { kind: 'builtin', name: command as 'rmail' | 'rsmtp' };
  return { kind: 'forbidden' };
}

/** argv of an admin action: the configured words, then `--` and the job's arguments. */
export function actionArgv(argv: string[], args: string[]): string[] {
  return args.length > 0 ? [...argv.slice(1), '--', ...args] : argv.slice(1);
}

/**
 * When a received job's queue lifetime began (ms): its creation, or its last `mailbag
 * retry`. Made "in the future" by a peer whose clock is ahead, it counts from its arrival
 * here (the file's mtime, by our clock), or it would be retried until that time came.
 */
async function lifetimeFrom(job: OpenJob, state: RunState, now: Date): Promise<number> {
  let made = Date.parse(job.header.created);
  if (made > now.getTime()) made = Math.min(made, await stat(job.ref.path).then((st) => st.mtimeMs, () => made));
  if (made > now.getTime()) {
    // its arrival lies ahead too (this clock was ahead when it came, set back since): it
    // counts from the first run that sees it so, its mtime set to now (a lost update: a
    // later run), not from when this clock catches up
    await utimes(job.ref.path, now, now).catch(() => undefined);
    made = now.getTime();
  }
  return Math.max(made, state.retriedAt ? Date.parse(state.retriedAt) : 0);
}

/**
 * A failure reason as a notice's Diagnostic-Code: one that already starts with its type
 * (a command's `x-unix; …`, an MTA's `smtp; …`) as it is, ours under `x-mailbag;`.
 */
function diagnosticOf(reason: string): string {
  return /^[a-z0-9-]+; /i.test(reason) ? reason : `x-mailbag; ${reason}`;
}

function fmt(d: Date): string {
  return d.toISOString();
}

class JobRun {
  constructor(
    private readonly r: Runner,
    private readonly job: OpenJob,
    private state: RunState,
    private readonly deliverer: Deliverer,
    /** the peer's pass: a notice that waits for our spool is a failure of the run */
    private readonly pass: PassState,
  ) {}

  private get peer(): string {
    return this.job.ref.peer;
  }

  private get header(): JobHeader {
    return this.job.header;
  }

  /** the worker's room for this job's records, from just before its first hand-over (reserve.ts) */
  private room: RecordReserve | undefined;
  /**
   * A record of this attempt needed the room held for it: the spool is full. Nothing more
   * is handed over or recorded, no notice sent, until the attempt's end (R2a), so the room
   * needed stays two records whatever the job's size.
   */
  private full = false;

  /** the worker's room for this job's records (reserve.ts), held from now on */
  private async holdRoom(txs: readonly Transaction[]): Promise<void> {
    this.room = this.r.reserveFor(this.deliverer);
    await this.room.ensure(this.r.spool, recordSizes(txs));
  }

  async save(): Promise<void> {
    if (this.room) {
      if (await this.room.write(this.r.spool, this.peer, this.header.id, this.state, (line) => this.r.log(`${this.peer}/${this.header.id}: ${line}`))) this.full = true;
    } else await writeState(this.r.spool, this.peer, this.header.id, this.state);
  }

  private progress(i: number): TxProgress {
    return (this.state.tx[String(i)] ??= { accepted: [], failed: [], noticed: false });
  }

  /** Recipients of `tx` already settled (accepted or failed): never offered again. */
  settled(tx: Transaction): Set<string> {
    const p = this.state.tx[String(tx.index)];
    return new Set(p ? [...p.accepted, ...p.failed.map((f) => f.address)] : []);
  }

  /**
   * Record results durably, then send the notice for new permanent failures. When the
   * job's last transaction was accepted whole, the record is skipped: the job is
   * removed next, and a crash in between is the same hand-over window as before it.
   */
  async record(tx: Transaction, results: RecipientResult[], last: boolean): Promise<void> {
    faultPoint('runner-after-handover');
    const p = this.progress(tx.index);
    let newFailures = false;
    for (const res of results) {
      if (res.kind === 'accepted' && !p.accepted.includes(res.address)) p.accepted.push(res.address);
      // diagnostics cut as the reserve counts them (recordBound): an MTA's long refusal
      // cannot outgrow the room held for the record
      if (res.kind === 'permanent' && !p.failed.some((f) => f.address === res.address)) {
        p.failed.push({ address: res.address, status: res.status, diagnostic: recordedDiagnostic(res.diagnostic, tx.recipients.length) });
        newFailures = true;
      }
      if (res.kind === 'temporary') this.state.lastError = recordedDiagnostic(`${res.address}: ${res.diagnostic}`, 1);
    }
    if (newFailures) {
      p.noticed = false;
      this.newNoticeOwed();
    }
    if (last && results.every((r) => r.kind === 'accepted') && Object.keys(this.state.tx).length === 1 && p.failed.length === 0) return;
    // the spool is full (a record took the room held for it): these results wait in memory
    // for the attempt's last record (exim -bS took the whole batch at once), the notice for
    // the next attempt
    if (this.full) return;
    await this.save();
    faultPoint('runner-after-progress');
    if (newFailures && !this.full) await this.noticeFor(tx, 'the mail system refused a recipient permanently');
  }

  /**
   * Send (once) the notice for a transaction's failed recipients. False when the MTA
   * deferred it: recorded (RunState.noticeRetry), to be tried again after the backoff —
   * by this job's next attempt while others of its recipients wait, else from failed/,
   * which also gives it its end.
   */
  async noticeFor(tx: Transaction, reason: string): Promise<boolean> {
    const p = this.progress(tx.index);
    if (p.noticed || p.failed.length === 0) return true;
    const rcpts: NoticeRecipient[] = p.failed.map((f) => {
      const r = tx.recipients.find((x) => x.address === f.address);
      const orcpt = r ? paramValue(r.params, 'ORCPT') : undefined;
      return { recipient: f.address, status: f.status, diagnostic: f.diagnostic, originalRecipient: orcpt ? xtextDecode(orcpt) : undefined };
    });
    let why = 'no result';
    let line: string | undefined;
    const sent = await this.r.sendNotice(this.deliverer, {
      sender: tx.sender,
      recipients: rcpts,
      reason,
      jobId: this.header.id,
      created: this.header.created,
      tx,
    }, (diagnostic) => (why = diagnostic));
    if (sent) {
      p.noticed = true;
      if (!noticeOwed(this.state)) this.state.noticeRetry = undefined;
    } else {
      const r = deferNotice(this.state, this.r.now());
      this.r.noticeDeferredNow.add(`${this.peer}/${this.header.id}`);
      line = `${this.peer}/${this.header.id}: notice to <${tx.sender}>: will retry after ${r.nextAttempt}: ${why}`;
    }
    // the record first, then the line (as Runner's notices from failed/): a kill between
    // leaves the deferral recorded and unsaid, never said and not kept
    await this.save();
    if (line !== undefined) {
      faultPoint('runner-notice-deferred');
      this.r.log(line);
    }
    return sent;
  }

  /**
   * A failure joins the notices owed: while an earlier one is deferred, the lifetime after
   * which they are given up counts from now, so the new one gets its own queue_lifetime
   * (the earlier one at most that much longer; the record is saved by the caller).
   */
  private newNoticeOwed(): void {
    if (this.state.noticeRetry) this.state.noticeRetry.since = fmt(this.r.now());
  }

  /** Each recipient of the job is settled: accepted, or refused (its notice sent or owed). */
  private recipientsSettled(txs: Transaction[]): boolean {
    return txs.every((tx) => {
      const s = this.settled(tx);
      return tx.recipients.every((r) => s.has(r.address));
    });
  }

  private async transactions(name: 'rmail' | 'rsmtp'): Promise<{ txs: Transaction[]; problem?: string | undefined }> {
    const { path } = this.job.ref;
    if (name === 'rmail') {
      const { tx } = await rmailTransaction(path, this.job.payloadOffset, this.header.args);
      return { txs: [tx] };
    }
    const idx = await indexBsmtp(path, this.job.payloadOffset);
    return { txs: idx.transactions, problem: idx.problem };
  }

  /** Run the job once. */
  async run(): Promise<'done' | 'retry' | 'failed' | 'skipped'> {
    const now = this.r.now();
    const peerConfig = this.r.config.peers[this.peer];
    const age = now.getTime() - (await lifetimeFrom(this.job, this.state, now));
    const expired = age > this.r.config.queueLifetimeMs;
    const action = resolveAction(peerConfig, this.header.command);

    if (action.kind === 'forbidden') {
      return this.fail(`command "${this.header.command}" is not allowed for peer ${this.peer}`, '5.7.1', undefined);
    }
    let txs: Transaction[] | undefined;
    let problem: string | undefined;
    if (action.kind === 'builtin') {
      try {
        ({ txs, problem } = await this.transactions(action.name));
      } catch (err) {
        const e = asMailbagError(err);
        if (e.temporary) throw e;
        return this.fail(e.message, e.status, undefined);
      }
      // a notice may be owed from an attempt that crashed before sending it, or one the
      // MTA deferred: tried again once its backoff has passed (--now: at once), not at
      // every run
      if ((this.r.force || noticeDue(this.state, now)) && noticeOwed(this.state)) {
        // its record (noticed) through the room held for the job's records, as the
        // delivery's: a spool that fills as the MTA takes the notice must not leave it
        // sent and unrecorded, to be sent again by the next attempt (R2a)
        await this.holdRoom(txs);
        for (const tx of txs) if (this.full || !(await this.noticeFor(tx, 'the mail system refused a recipient permanently'))) break;
      }
    }
    if (expired) {
      return this.fail(`not delivered within the queue lifetime (${Math.round(this.r.config.queueLifetimeMs / 3_600_000)} h)`, '4.4.7', txs, 'expired');
    }
    if (!this.r.force && !retryTimeCome(this.state.nextAttempt, now)) return 'skipped';

    // the batch journal (Runner.runPeer) already says this job is being handed over
    this.state.attempts++;
    this.state.startedAt = fmt(now);

    if (action.kind === 'argv') {
      // room for the attempt's one record (its failure or its retry), held before the
      // command runs (R2a): a spool that fills meanwhile must not leave a command that
      // failed for good unrecorded in in/, to be run again by every next attempt until
      // there is room. No room: the command does not run (the job waits, spool full)
      await this.holdRoom([]);
      const out = await runChild(action.argv[0]!, actionArgv(action.argv, this.header.args), this.job.payload(), this.r.env);
      faultPoint('runner-after-handover');
      const c = classifyExit(out, action.argv[0]!);
      if (c.kind === 'accepted') return this.done();
      // as uuxqt reads a command (DESIGN.md promise 4): only 75 (a signal, a program that
      // cannot run) is temporary; 74 and 71, temporary for a sendmail, fail here for good,
      // with a permanent status for the notice's "Action: failed"
      if (out.code === 75 || out.signal || out.spawnError) return this.retry(c.diagnostic);
      return this.fail(c.diagnostic, c.kind === 'permanent' ? c.status : '5.3.0', undefined);
    }

    const list = txs!;
    // a notice above took the room: the spool is full, nothing is handed over (R2a)
    if (this.full) return this.retry('the spool is full: the rest of the job waits for the next attempt');
    // room for the records this delivery writes, held before the MTA has anything: a
    // spool that fills meanwhile must not leave a transaction it took unrecorded (R2a)
    await this.holdRoom(list);
    if (action.name === 'rmail') {
      await this.record(list[0]!, await this.deliverer.deliver(list[0]!, this.settled(list[0]!)), true);
    } else {
      const lastIndex = list[list.length - 1]!.index;
      // once the spool is full, nothing more is handed over in this attempt (as after a 4xx)
      const skip = (i: number): ReadonlySet<string> => (this.full ? new Set(list[i]!.recipients.map((r) => r.address)) : this.settled(list[i]!));
      await this.deliverer.deliverBatch(list, skip, (tx, res) => this.record(tx, res, tx.index === lastIndex));
    }
    if (this.full) {
      // one record more (the other file held): all taken and accepted, the job is done
      // (no record); else the rest, its notices and its end wait for the next attempt
      const clean = !problem && this.recipientsSettled(list) && list.every((tx) => (this.state.tx[String(tx.index)]?.failed.length ?? 0) === 0);
      if (clean) return this.done();
      return this.retry('the spool is full: the rest of the job waits for the next attempt');
    }
    // every recipient accepted or refused: delivery is over. A notice the MTA deferred does
    // not keep the job in in/ (where it would end as "not delivered within the queue
    // lifetime"): the job fails with the refusal, and failed/ retries the notice with its
    // backoff and its end (Runner.finishFailedNotices)
    if (this.recipientsSettled(list)) {
      if (problem) return this.fail(`the BSMTP job ends badly after its complete transactions: ${problem}`, '5.5.2', list);
      // a recipient refused for good: the job goes to failed/ with the MTA's words as its
      // reason (its notices are out already; accepted recipients stay recorded)
      const refused = list.flatMap((tx) => this.state.tx[String(tx.index)]?.failed ?? []);
      if (refused.length > 0) {
        const r = refused[0]!;
        return this.fail(`<${r.address}>: ${r.diagnostic}${refused.length > 1 ? ` (and ${refused.length - 1} more)` : ''}`, r.status, list);
      }
      return this.done();
    }
    return this.retry(this.state.lastError ?? 'temporary failure');
  }

  private async done(): Promise<'done'> {
    // the directory is fsynced once per batch (Runner.runPeer), not once per job
    await unlink(this.job.ref.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    faultPoint('runner-after-remove');
    await removeState(this.r.spool, this.peer, this.header.id);
    this.r.log(`${this.peer}/${this.header.id}: done`);
    return 'done';
  }

  private async retry(why: string): Promise<'retry'> {
    const now = this.r.now();
    this.state.startedAt = undefined;
    this.state.lastError = why;
    this.state.nextAttempt = fmt(new Date(now.getTime() + backoffMs(this.state.attempts)));
    await this.save();
    this.r.log(`${this.peer}/${this.header.id}: retry after ${this.state.nextAttempt}: ${why}`);
    return 'retry';
  }

  /**
   * Fail for good: record why, move the job to failed/, then notify the senders of
   * what was not delivered. The record comes first, so a crash anywhere after it
   * finishes the same way on the next run.
   */
  async fail(reason: string, status: string, txs: Transaction[] | undefined, kind = 'failed'): Promise<'failed'> {
    const now = this.r.now();
    this.state.startedAt = undefined;
    this.state.failed ??= { reason, at: fmt(now), status, noticeSent: false };
    if (txs) {
      // the recipients not yet settled fail now, with this reason
      for (const tx of txs) {
        const settled = this.settled(tx);
        const p = this.progress(tx.index);
        for (const r of tx.recipients) {
          if (!settled.has(r.address)) {
            p.failed.push({ address: r.address, status, diagnostic: diagnosticOf(reason) });
            p.noticed = false;
            this.newNoticeOwed();
          }
        }
      }
    }
    await this.save();
    faultPoint('runner-after-fail-record');
    if (this.job.ref.queue === 'in') {
      const moved = await this.r.spool.moveJob(this.job.ref, 'failed');
      // the notices return the message from where the job is now (its in/ name is gone)
      const from = this.job.ref.path;
      txs = txs?.map((tx) => (tx.body.path === from ? { ...tx, body: { ...tx.body, path: moved.path } } : tx));
    }
    faultPoint('runner-after-fail-move');
    // its record took the room held for it (a full spool): the notices go from failed/ in a
    // later run, when a record of them has room (not in this one)
    let waits: MailbagError | undefined;
    if (this.full) this.r.noticeDeferredNow.add(`${this.peer}/${this.header.id}`);
    else {
      try {
        await this.r.finishFailedNotices(this.deliverer, this.job, this.state, txs);
      } catch (err) {
        // our own spool (no room held for the notice's record: nothing of it went out): the
        // job has failed all the same (recorded, in failed/), and its notice waits there
        // for the next run (pendingNotices), said and a failure of this one, not a retry
        const e = asMailbagError(err);
        if (e.code !== 'spool' && e.code !== 'spool-full') throw e;
        waits = e;
      }
    }
    this.r.log(`${this.peer}/${this.header.id}: ${kind}: ${reason}`);
    if (waits) {
      this.r.log(`${this.peer}/${this.header.id}: the notice waits for the next run: ${waits.message}`);
      spoolFailure(this.pass, `${this.peer}/${this.header.id}`, waits);
    }
    return 'failed';
  }
}

export class Runner {
  readonly force: boolean;
  readonly env: NodeJS.ProcessEnv;
  readonly now: () => Date;
  readonly log: (line: string) => void;
  /** notices given up in this run (deferred for longer than queue_lifetime) */
  noticesGivenUp = 0;
  /**
   * jobs (PEER/ID) whose notice the MTA deferred in this run: not tried again in it, also
   * with --now (which ignores the backoff of earlier runs)
   */
  readonly noticeDeferredNow = new Set<string>();

  constructor(readonly config: Config, readonly spool: Spool, o: Omit<RunOptions, 'config' | 'spool' | 'peers'> = {}) {
    this.force = o.force ?? false;
    this.env = o.env ?? process.env;
    this.now = o.now ?? (() => new Date());
    const log = o.log;
    // a job's header is a peer's text: no control character of it reaches a terminal
    this.log = log ? (line: string): void => log(peerText(line)) : (): void => undefined;
  }

  newDeliverer(): Deliverer {
    return new Deliverer({ delivery: this.config.delivery, env: this.env, site: this.config.site || hostname() });
  }

  private readonly reserves = new WeakMap<Deliverer, RecordReserve>();

  /** The worker's (its deliverer's) room for progress records, let go when it closes. */
  reserveFor(d: Deliverer): RecordReserve {
    let r = this.reserves.get(d);
    if (!r) {
      const made = new RecordReserve();
      this.reserves.set(d, made);
      d.atClose(() => made.release());
      r = made;
    }
    return r;
  }

  /** `deferred`: told the MTA's words when it defers the notice (then the caller logs) */
  async sendNotice(d: Deliverer, n: NoticeRequest, deferred?: (diagnostic: string) => void): Promise<boolean> {
    return sendNotice(d, { site: this.config.site || hostname(), now: this.now(), log: this.log, ...(deferred ? { deferred } : {}) }, n);
  }

  /**
   * Send what a failed job still owes: per-transaction notices, or one for the whole job.
   * A notice the MTA defers is tried again after the backoff (pendingNotices), and given
   * up once it has been deferred for longer than queue_lifetime (Postfix's
   * bounce_queue_lifetime, which defaults to the same 5 days): recorded in the job's
   * state (`mailbag failed`: "notice given up"), said once, counted in the run's summary.
   */
  async finishFailedNotices(d: Deliverer, job: OpenJob, state: RunState, txs: Transaction[] | undefined): Promise<void> {
    if (!state.failed || state.failed.noticeSent || state.failed.noticeGivenUp) return;
    const peer = job.ref.peer;
    const id = job.header.id;
    // deferred a moment ago (this attempt, or a run in its backoff): not again yet
    if (this.noticeDeferredNow.has(`${peer}/${id}`) || (!this.force && !noticeDue(state, this.now()))) return;
    // room for the record of what goes out, held before anything does (R2a): a spool that
    // fills as the MTA takes a notice must not leave it sent and unrecorded, to be sent
    // again by the next run (promise 2). No room: nothing is sent (a spool error)
    const room = this.reserveFor(d);
    await room.ensure(this.spool, [noticeRecordBound(state)]);
    let all = true;
    const owed: string[] = [];
    let why = 'no result';
    const deferred = (diagnostic: string): void => void (why = diagnostic);
    if (txs) {
      for (const tx of txs) {
        const p = state.tx[String(tx.index)];
        if (!p || p.noticed || p.failed.length === 0) continue;
        const ok = await this.sendNotice(d, {
          sender: tx.sender,
          recipients: p.failed.map((f) => ({ recipient: f.address, status: f.status, diagnostic: f.diagnostic })),
          reason: state.failed.reason,
          jobId: id,
          created: job.header.created,
          tx,
        }, deferred);
        if (ok) p.noticed = true;
        else {
          all = false;
          owed.push(tx.sender);
        }
      }
    } else {
      const already = new Set(Object.values(state.tx).flatMap((p) => p.accepted));
      const rcpts = job.header.recipients.length > 0 ? job.header.recipients : job.header.args;
      all = await this.sendNotice(d, {
        sender: job.header.sender,
        recipients: rcpts.filter((r) => !already.has(r)).map((r) => ({ recipient: r, status: state.failed!.status, diagnostic: diagnosticOf(state.failed!.reason) })),
        reason: state.failed.reason,
        jobId: id,
        created: job.header.created,
        tx: undefined,
      }, deferred);
      if (!all) owed.push(job.header.sender);
    }
    // the record first, then the line, as for every other outcome: a crash between leaves
    // the line unsaid (`mailbag failed` shows the record), never said twice
    let line: string | undefined;
    let givenUp = false;
    if (all) {
      state.failed.noticeSent = true;
      state.noticeRetry = undefined;
    } else {
      const now = this.now();
      const r = deferNotice(state, now);
      this.noticeDeferredNow.add(`${peer}/${id}`);
      const to = [...new Set(owed)].map((s) => `<${s}>`).join(', ');
      if (now.getTime() - Date.parse(r.since) >= this.config.queueLifetimeMs) {
        state.failed.noticeGivenUp = fmt(now);
        givenUp = true;
        line = `${peer}/${id}: notice to ${to} given up: the mail system has deferred it since ${r.since} (${r.attempts} attempts), longer than the queue lifetime (${Math.round(this.config.queueLifetimeMs / 3_600_000)} h): ${why}`;
      } else {
        line = `${peer}/${id}: notice to ${to}: will retry after ${r.nextAttempt}: ${why}`;
      }
    }
    await room.write(this.spool, peer, id, state, (l) => this.log(`${peer}/${id}: ${l}`));
    if (givenUp) {
      faultPoint('runner-notice-given-up');
      this.noticesGivenUp++;
    }
    if (line !== undefined) this.log(line);
  }

  /**
   * Failed jobs whose notice has not gone out yet (a crash or a temporary refusal). A job
   * that cannot be read stops only its own notice: said once and recorded when that is for
   * good (nobody can be told), left for the next run when temporary.
   */
  private async pendingNotices(d: Deliverer, peer: string, pass: PassState): Promise<void> {
    for (const ref of await this.spool.listJobs('failed', peer)) {
      let state: RunState | undefined;
      try {
        state = await readState(this.spool, peer, ref.id);
      } catch (err) {
        // a record that does not read (docs/spool.md R8): whether the sender was told is
        // unknown; a failure of the run, as for a job in in/, never skipped in silence
        const e = asMailbagError(err);
        this.log(`${peer}/${ref.id}: ${e.message}`);
        spoolFailure(pass, `${peer}/${ref.id}`, new MailbagError('spool', e.message, { cause: e }));
        continue;
      }
      if (!state?.failed || state.failed.noticeSent || state.failed.noticeGivenUp) continue;
      // one the MTA deferred: again after its backoff (--now: at once), not at every run
      if (!this.force && !noticeDue(state, this.now())) continue;
      let job: OpenJob;
      try {
        job = await this.spool.readJob(ref);
      } catch (err) {
        const e = asMailbagError(err);
        const line = `${peer}/${ref.id}: no notice can be sent${e.temporary ? ' now' : ''}: ${e.message}`;
        if (!e.temporary) {
          // the record first, then the line: a kill between leaves it unsaid, not said twice
          state.failed.noticeSent = true;
          await writeState(this.spool, peer, ref.id, state);
          faultPoint('runner-notice-unsendable');
        }
        this.log(line);
        continue;
      }
      try {
        // a job that cannot be read now (EMFILE, EIO): its notices wait, as below
        const txs = await this.transactionsOf(job, state);
        if (txs && Object.keys(state.tx).length === 0) {
          // failed as a whole before any delivery (our peer refused it for good): every
          // recipient fails with the recorded reason, as JobRun.fail records it
          const { reason, status } = state.failed;
          for (const tx of txs) {
            state.tx[String(tx.index)] = { accepted: [], failed: tx.recipients.map((r) => ({ address: r.address, status, diagnostic: diagnosticOf(reason) })), noticed: false };
          }
        }
        await this.finishFailedNotices(d, job, state, txs);
      } catch (err) {
        // our own spool (no room for the notice's record, a full disk, a read that failed
        // for now): the notices wait, said and a failure of the run, and the jobs in in/
        // are still run
        const e = asMailbagError(err);
        if (e.code !== 'spool' && e.code !== 'spool-full') throw e;
        this.log(`${peer}/${ref.id}: the notice waits for the next run: ${e.message}`);
        spoolFailure(pass, `${peer}/${ref.id}`, e);
        // a full spool: the others' notices would meet it too
        if (e.code === 'spool-full') break;
      }
    }
  }

  /**
   * The transactions of a built-in job; undefined for another job, or one that cannot be
   * parsed. A read that fails for now throws (a spool error), never undefined. A BSMTP
   * job of ours that failed on its way out (from this site, to the peer it is filed under)
   * is read whatever the peer's `accept` (which says what its jobs may run here): its
   * notices go per transaction, to each sender, as each recipient's NOTIFY asks, with ORCPT.
   * So is a job delivered per transaction (its record `state` holds them), whatever the
   * configuration says now: read by today's `accept` (rsmtp taken out of it, the peer
   * removed), its notice went as one for the whole job, to every recipient not accepted,
   * and told those refused in a transaction already noticed again.
   */
  async transactionsOf(job: OpenJob, state?: RunState): Promise<Transaction[] | undefined> {
    try {
      const c = job.header.command;
      const ours = c === 'rsmtp' && job.header.to === job.ref.peer && job.header.from === this.config.site;
      const delivered = state !== undefined && Object.keys(state.tx).length > 0 && (c === 'rmail' || c === 'rsmtp');
      const a = ours || delivered ? ({ kind: 'builtin', name: c as 'rmail' | 'rsmtp' } as const) : resolveAction(this.config.peers[job.ref.peer], c);
      if (a.kind !== 'builtin') return undefined;
      return a.name === 'rmail'
        ? [(await rmailTransaction(job.ref.path, job.payloadOffset, job.header.args)).tx]
        : (await indexBsmtp(job.ref.path, job.payloadOffset)).transactions;
    } catch (err) {
      // a job that cannot be parsed (for good): its notice goes for the whole job. A read
      // that failed for now (EMFILE, ENFILE, EIO, …) is thrown, a spool error: read as the
      // whole job, the notice would name recipients already told in their own
      // transaction's notice (promise 2); it waits for a run that can read the job
      const e = asMailbagError(err);
      if (!e.temporary) return undefined;
      throw e.code === 'spool' || e.code === 'spool-full' ? e : new SpoolError(`reading the job's transactions: ${e.message}`, { cause: err });
    }
  }

  private async runOne(ref: JobRef, d: Deliverer, pass: PassState): Promise<'done' | 'retry' | 'failed' | 'skipped'> {
    let job: OpenJob;
    try {
      job = await this.spool.readJob(ref);
    } catch (err) {
      const e = asMailbagError(err);
      if (e.temporary) throw e;
      // a job file we cannot read at all: out of the way, with its reason; nobody to notify
      const state = (await readState(this.spool, ref.peer, ref.id).catch(() => undefined)) ?? emptyState();
      state.failed = { reason: e.message, at: fmt(this.now()), status: e.status, noticeSent: true };
      await writeState(this.spool, ref.peer, ref.id, state);
      await this.spool.moveJob(ref, 'failed');
      this.log(`${ref.peer}/${ref.id}: failed: ${e.message}`);
      return 'failed';
    }
    const state = (await readState(this.spool, ref.peer, ref.id)) ?? emptyState();
    const run = new JobRun(this, job, state, d, pass);
    if (state.failed) {
      // a crash after the failure was recorded: finish moving it and the notices
      return run.fail(state.failed.reason, state.failed.status, await this.transactionsOf(job, state));
    }
    return run.run();
  }

  /**
   * A record whose job is in none of in/, out/ and failed/ belongs to a job that was done
   * (removed) just before a crash, or sent: the record goes too. One in out/ is kept: an
   * outgoing job `mailbag retry` put back, whose lifetime counts from its `retriedAt`
   * (without it the next expiry failed the job again at once). out/ is listed before
   * failed/: a session or expiry moving a job from out/ to failed/ (its record written
   * first) meanwhile is seen in one of them.
   */
  private async removeOrphanRecords(peer: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.spool.path('run', peer));
    } catch {
      return;
    }
    const live = new Set<string>();
    for (const q of ['in', 'out', 'failed'] as const) for (const r of await this.spool.listJobs(q, peer)) live.add(r.id);
    for (const id of names) {
      if (isJobId(id) && !live.has(id)) await removeState(this.spool, peer, id);
      // we hold the peer's runner lock: a journal here is a dead runner's; its jobs
      // that are still in in/ are run again now (the documented window)
      if (isBatchName(id)) await endBatch(this.spool, peer, id);
    }
  }

  /**
   * A peer not in the configuration (removed while jobs for it wait): there is no whitelist
   * to run its received jobs by, so they wait, said at every run; one older than
   * queue_lifetime fails for good (4.4.7) with its notice, as a configured peer's would,
   * and the notices its failed jobs owe (an expired outgoing job) are sent. Under its
   * runner lock; a runner holding that lock does the same.
   */
  async unknownPeer(peer: string, summary: RunSummary, unfinished: { peer: string; error: MailbagError }[] = []): Promise<void> {
    const pass: PassState = { busyReported: false, recovery: 'clean', spoolFailures: 0 };
    try {
      await this.unknownPeerJobs(peer, summary, pass);
    } finally {
      reportSpoolFailures(pass, peer, unfinished);
    }
  }

  private async unknownPeerJobs(peer: string, summary: RunSummary, pass: PassState): Promise<void> {
    const refs = await this.spool.listJobs('in', peer);
    let lock;
    try {
      lock = await this.spool.lock(`runner.${peer}`, { log: this.log });
    } catch (err) {
      const e = asMailbagError(err);
      if (e.code !== 'locked' || !(await this.lockHeld(`runner.${peer}`))) throw e;
      summary.skipped += refs.length;
      return;
    }
    const d = this.newDeliverer();
    try {
      await this.pendingNotices(d, peer, pass);
      const hours = Math.round(this.config.queueLifetimeMs / 3_600_000);
      let left = 0;
      for (const ref of refs) {
        let job: OpenJob;
        try {
          job = await this.spool.readJob(ref);
        } catch {
          left++;
          continue;
        }
        const state = (await readState(this.spool, peer, ref.id).catch(() => undefined)) ?? emptyState();
        const now = this.now();
        if (!(now.getTime() - (await lifetimeFrom(job, state, now)) > this.config.queueLifetimeMs)) {
          left++;
          continue;
        }
        // one delivered in part before its peer was removed: its notices per transaction,
        // for the recipients not told yet (transactionsOf reads it by its record). One
        // that cannot be read now (EMFILE, EIO) fails at the next run, read then
        let txs: Transaction[] | undefined;
        try {
          txs = await this.transactionsOf(job, state);
        } catch (err) {
          const e = asMailbagError(err);
          this.log(`${peer}/${ref.id}: fails at the next run: ${e.message}`);
          spoolFailure(pass, `${peer}/${ref.id}`, e);
          summary.skipped++;
          continue;
        }
        await new JobRun(this, job, state, d, pass).fail(`not delivered within the queue lifetime (${hours} h): ${peer} is not a configured peer`, '4.4.7', txs, 'expired');
        summary.failed++;
      }
      if (left > 0) {
        this.log(`${peer}: not a configured peer; ${left} inbound job(s) left alone, each fails once older than queue_lifetime (${hours} h)`);
        summary.skipped += left;
      }
    } finally {
      await d.close();
      await lock.release();
    }
  }

  /**
   * Run every due job of one peer with bounded concurrency, under the peer's runner lock.
   * A killed session's last steps (S4, S7) are finished under that lock first, so the
   * jobs they move in are run by the same runner. A runner that finds the lock taken
   * leaves the peer to its holder, and the holder runs what comes in before it ends:
   * after each pass it finishes a killed session again and lists in/PEER/ again, and
   * after letting go it looks once more and takes the lock back when there are jobs it
   * has not seen. Whoever moves jobs in tries the lock afterwards, so no job waits for a
   * later run because two runners met.
   */
  async runPeer(peer: string, summary: RunSummary, unfinished: { peer: string; error: MailbagError }[] = []): Promise<void> {
    const pass: PassState = { busyReported: false, recovery: 'clean', spoolFailures: 0 };
    try {
      await this.rounds(peer, summary, unfinished, pass);
    } finally {
      reportSpoolFailures(pass, peer, unfinished);
    }
  }

  private async rounds(peer: string, summary: RunSummary, unfinished: { peer: string; error: MailbagError }[], pass: PassState): Promise<void> {
    const seen = new Set<string>();
    for (let round = 0; ; round++) {
      let lock;
      try {
        // a junk lock file taken over is said with the run's other lines (none for --quiet)
        lock = await this.spool.lock(`runner.${peer}`, { log: this.log });
      } catch (err) {
        const e = asMailbagError(err);
        if (e.code !== 'locked') throw e;
        // a file there that is not a lock stops every runner of the peer: not "another runner"
        if (!(await this.lockHeld(`runner.${peer}`))) throw e;
        // after our own round: the new holder lists in/PEER/ once it has the lock
        if (round > 0) return;
        this.log(`${peer}: another runner is at work (${e.message}); it runs ${peer}'s jobs, also those that come in before it ends`);
        summary.skipped++;
        return;
      }
      try {
        if (round === 0) {
          await this.removeOrphanRecords(peer);
          const first = this.newDeliverer();
          try {
            await this.pendingNotices(first, peer, pass);
          } finally {
            await first.close();
          }
        }
        for (;;) {
          await this.finishIdle(peer, pass, unfinished);
          const refs = (await this.spool.listJobs('in', peer)).filter((r) => !seen.has(r.id));
          if (refs.length === 0) break;
          // a job handed over must be removable after: from a queue this user may not
          // change (another user's in/PEER, one made immutable, a read-only mount) every
          // job would be delivered again at every run. Then nothing is handed over (75)
          await access(this.spool.path('in', peer), constants.W_OK).catch((err: unknown) => {
            throw spoolErrorFrom(err, `removing delivered jobs from ${this.spool.path('in', peer)}`);
          });
          for (const r of refs) seen.add(r.id);
          await this.runRefs(peer, refs, summary, pass);
        }
      } finally {
        await lock.release();
      }
      if (!(await this.moreToRun(peer, seen, pass))) return;
    }
  }

  /** Whether locks/NAME.lock is a lock someone holds (not gone, not a file of something else). */
  private async lockHeld(name: string): Promise<boolean> {
    const text = await readFile(this.spool.path('locks', `${name}.lock`), 'utf8').catch(() => undefined);
    return text === undefined || parseLock(text) !== undefined;
  }

  /** S4/S7 of a dead session with `peer`, under our runner lock; a failure is reported once. */
  private async finishIdle(peer: string, pass: PassState, unfinished: { peer: string; error: MailbagError }[]): Promise<void> {
    if (pass.recovery === 'failed' || !Object.hasOwn(this.config.peers, peer)) return;
    const r = await finishIdleSession(this.config, this.spool, peer, pass.busyReported ? () => undefined : this.log, this.log);
    if ('error' in r) {
      pass.recovery = 'failed';
      unfinished.push({ peer, error: r.error });
      return;
    }
    pass.recovery = r.state;
    if (r.state === 'busy') pass.busyReported = true;
    // what the recovery leaves (a bag it keeps): not a reason to come back for
    else pass.left = leftoversKey(await leftovers(this.spool.root, peer).catch(() => undefined));
  }

  /**
   * After letting go of the lock: jobs in in/PEER/ this runner has not seen (moved in by
   * someone who found the lock ours), or a killed session's leftovers that appeared after
   * our last look (when that look was not stopped by a live session or a failure).
   */
  private async moreToRun(peer: string, seen: Set<string>, pass: PassState): Promise<boolean> {
    if ((await this.spool.listJobs('in', peer)).some((r) => !seen.has(r.id))) return true;
    if (pass.recovery === 'busy' || pass.recovery === 'failed') return false;
    const now = leftoversKey(await leftovers(this.spool.root, peer).catch(() => undefined));
    return now !== '' && now !== pass.left;
  }

  /** One pass over `refs` with delivery.concurrency workers, in batches with a journal each. */
  private async runRefs(peer: string, refs: JobRef[], summary: RunSummary, pass: PassState): Promise<void> {
    const width = Math.max(1, Math.min(this.config.delivery.concurrency, refs.length || 1));
    let next = 0;
    let stop = false;
    const worker = async (): Promise<void> => {
      const d = this.newDeliverer();
      try {
        while (next < refs.length && !stop) {
          // a batch: one journal commit before, one directory fsync after
          const size = Math.max(1, Math.min(BATCH, Math.ceil((refs.length - next) / width)));
          const batch = refs.slice(next, next + size);
          next += batch.length;
          const journal = await startBatch(this.spool, peer, batch.map((r) => r.id));
          faultPoint('runner-after-started');
          for (const ref of batch) {
            let outcome: 'done' | 'retry' | 'failed' | 'skipped';
            try {
              outcome = await this.runOne(ref, d, pass);
            } catch (err) {
              // a temporary problem of ours (spool, MTA unreachable): the job stays, unchanged
              const e = asMailbagError(err);
              this.log(`${peer}/${ref.id}: ${e.message}`);
              outcome = 'retry';
              // our own spool (a record it cannot read, a full disk): not a retry that ends
              // by itself, a failure of the run (reported once per peer, after the others)
              if (e.code === 'spool' || e.code === 'spool-full') spoolFailure(pass, `${peer}/${ref.id}`, e);
            }
            summary[outcome]++;
          }
          await this.spool.fsyncDir('in', peer);
          faultPoint('runner-after-batch');
          await endBatch(this.spool, peer, journal);
        }
      } finally {
        await d.close();
      }
    };
    // a worker that fails (our own spool: a journal that cannot be written) stops the others
    // taking new batches, and the pass ends only when each has finished its batch: never
    // while one still hands jobs to the MTA, since the caller then lets go of the runner lock
    const outcomes = await Promise.allSettled(Array.from({ length: width }, () => worker().catch((err: unknown) => {
      stop = true;
      throw err;
    })));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

interface PassState {
  /** "a session is running" said once per peer and run */
  busyReported: boolean;
  /** the last look at a killed session's leftovers */
  recovery: 'clean' | 'busy' | 'recovered' | 'failed';
  /** the leftovers that look left in place (leftoversKey) */
  left?: string;
  /** jobs that could not be run because of our own spool, and the first such error */
  spoolFailures: number;
  firstSpoolFailure?: MailbagError;
}

/** A job (or its notice) our own spool kept from going on: a failure of the run, said once per peer. */
function spoolFailure(pass: PassState, what: string, e: MailbagError): void {
  pass.spoolFailures++;
  pass.firstSpoolFailure ??= new MailbagError(e.code, `${what}: ${e.message}`, { cause: e });
}

function reportSpoolFailures(pass: PassState, peer: string, unfinished: { peer: string; error: MailbagError }[]): void {
  const first = pass.firstSpoolFailure;
  if (first) unfinished.push({ peer, error: new MailbagError(first.code, `${peer}: ${pass.spoolFailures} job(s) could not be run (${first.message})`, { cause: first }) });
}

function leftoversKey(l: Leftovers | undefined): string {
  return l ? [...l.staged.map((h) => `${h}.d`), ...l.acked.map((h) => `${h}.acked`)].sort().join(' ') : '';
}

/**
 * S4/S7 of a dead session with `peer`, finished under its session lock (the caller holds
 * the peer's runner lock). A failure (a ledger that does not read, a full disk, a
 * permission) leaves the committed jobs where they are: it is returned, for the caller to
 * report as a failure once the jobs already in in/PEER/ are delivered, and logged.
 */
async function finishIdleSession(config: Config, spool: Spool, peer: string, log: (line: string) => void, lockLog: (line: string) => void): Promise<{ state: 'clean' | 'busy' | 'recovered' } | { error: MailbagError }> {
  try {
    const r = await recoverIdlePeer(config, spool, peer, { log: lockLog });
    if (r.state === 'busy') log(`${peer}: a session is running (${r.reason}); the bags it has committed are its own to move`);
    if (r.state === 'recovered' && r.moved + r.removed > 0) {
      log(`${peer}: finished an earlier session: ${r.moved} received job(s) moved into in/${peer}/, ${r.removed} acknowledged job(s) removed from out/${peer}/`);
    }
    return { state: r.state };
  } catch (err) {
    const cause = err instanceof MailbagError ? err : new SpoolError(String((err as Error)?.message ?? err), { cause: err });
    const u = await inspectUnfinished(spool.root, peer).catch(() => undefined);
    const left = u ? ` (${u.unmoved.jobs} committed job(s) wait in bags/in/${peer}/, ${u.acked.jobs} acknowledged job(s) in out/${peer}/)` : '';
    const e = new MailbagError(cause.code, `${peer}: cannot finish an earlier session${left}: ${cause.message}`, { cause });
    log(e.message);
    return { error: e };
  }
}

/** Run the received jobs of every peer (or the given ones). */
export async function runJobs(o: RunOptions): Promise<RunSummary> {
  const spool = o.spool ?? (await Spool.open(o.config.spool));
  const runner = new Runner(o.config, spool, o);
  const summary: RunSummary = { done: 0, retry: 0, failed: 0, skipped: 0 };
  // a session killed after its commit or its ACK left work for the next session with that
  // peer (docs/spool.md S4, S7): finished by the runner of that peer (Runner.runPeer),
  // under its runner lock, so committed jobs are delivered now, not when the peer next
  // calls. Besides the peers with jobs in in/ or failed/ (failed/: a job our peer refused
  // for good still owes its sender a notice), every configured peer with such leftovers.
  const unfinished: { peer: string; error: MailbagError }[] = [];
  let peers = o.peers;
  if (!peers) {
    const found = new Set([...(await spool.peers('in')), ...(await spool.peers('failed'))]);
    for (const peer of Object.keys(o.config.peers)) {
      if (found.has(peer)) continue;
      // one that cannot be read is tried: its failure is reported
      const l = await leftovers(spool.root, peer).catch(() => undefined);
      if (!l || l.staged.length + l.acked.length > 0) found.add(peer);
    }
    peers = [...found];
  }
  for (const peer of peers) {
    // one peer whose runner fails (a runner lock file that is not a lock, a queue it
    // cannot read) stops no other peer's delivery: said after, as a failure of the run
    try {
      // jobs of a peer this configuration does not know (removed from it) are not run, and
      // fail once older than queue_lifetime, with their notices
      if (!Object.hasOwn(o.config.peers, peer)) await runner.unknownPeer(peer, summary, unfinished);
      else await runner.runPeer(peer, summary, unfinished);
    } catch (err) {
      const cause = asMailbagError(err);
      const error = new MailbagError(cause.temporary ? cause.code : 'internal', `${peer}: the received jobs wait in in/${peer}/ for the next mailbag run: ${cause.message}`, { cause });
      runner.log(error.message);
      unfinished.push({ peer, error });
    }
  }
  if (unfinished.length > 0) summary.unfinished = unfinished;
  if (runner.noticesGivenUp > 0) summary.noticesGivenUp = runner.noticesGivenUp;
  return summary;
}
