// Sessions with peers, as the commands use them: syncPeer (dial one peer, both
// directions), serveLink (the far end, identity from --peer only), dispatchPeers (every
// peer with work queued or due). One session per peer at a time: each holds the spool
// lock `session-PEER` for its whole length, so two clients never take the same mail.

import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config, PeerConfig } from '../config/types.js';
import { asMailbagError, ConfigError, MailbagError, SessionError, SpoolError } from '../errors.js';
import { isJobId, isName } from '../job/header.js';
import { jobIdTime } from '../job/id.js';
import { Spool } from '../spool/spool.js';
import { FILE_MODE, spoolErrorFrom, tmpName } from '../spool/commit.js';
import type { RunSummary } from '../runner/runner.js';
import { parseLock, type Lock } from '../spool/lock.js';
import type { Link, Transport } from '../transport/types.js';
import { transportForPeer } from '../transport/for-peer.js';
import type { BagCodec } from './messages.js';
import { usableCodecs } from '../bag/codec.js';
import { EarlySend, refuseSession, runSession, type SessionProgress, type SessionResult } from './session.js';
import { SessionStore, type ReceiveCaps } from './store.js';
import { prestartStageWorker } from './stage-ops.js';
import { clockSteps, onTodaysClock, readBootClock, type BootReading } from './clock.js';

export { runSession, refuseSession, type SessionOptions, type SessionProgress, type SessionResult } from './session.js';
export { SessionStore, planBags, type SpoolPaths, type PendingBag, type ReceiveCaps } from './store.js';
export { Ledger } from './ledger.js';
export { FrameDecoder, FRAME, encodeFrame } from './frame.js';

const NAME_RE = /^[a-z0-9][a-z0-9.-]*$/;

/** Wall-clock time of day to the millisecond, for MAILBAG_TRACE lines (both ends of a session line up). */
export function traceTime(now = new Date()): string {
  return now.toISOString().slice(11, 23);
}

export interface SessionHooks {
  onProgress?: (p: SessionProgress) => void;
  trace?: (line: string) => void;
  software?: string;
}

export function receiveCaps(config: Config): ReceiveCaps {
  return {
    maxBag: config.limits.maxBagSize,
    maxExpanded: config.limits.maxBagExpanded,
    maxJobs: config.limits.maxJobsPerBag,
    maxJob: config.limits.maxMessageSize,
  };
}

function codecsFor(peer: PeerConfig | undefined): BagCodec[] {
  const usable = usableCodecs();
  const first = peer?.codec && usable.includes(peer.codec) ? peer.codec : usable[0]!;
  return [first, ...usable.filter((c) => c !== first)];
}

/** `threads: 'caller'`: bags and staged files handled on this thread (a recovery outside a session: no worker start) */
export function storeFor(config: Config, spool: Spool, peer: string, peerConfig: PeerConfig | undefined, o: { threads?: 'caller' } = {}): SessionStore {
  return new SessionStore({
    paths: { root: spool.root, tmp: spool.tmpDir, out: spool.path('out', peer), in: spool.path('in', peer) },
    site: config.site,
    peer,
    ledgerRetentionMs: config.ledgerRetentionMs,
    accept: peerConfig ? [...peerConfig.accept, ...Object.keys(peerConfig.actions)] : undefined,
    ...(o.threads ? { bagThread: o.threads, stageThread: o.threads } : {}),
  });
}

/** `log`: where the command's informational lines go (a junk lock file taken over); default stderr */
async function lockPeer(spool: Spool, peer: string, log?: (line: string) => void): Promise<Lock> {
  try {
    return await spool.lock(`session-${peer}`, log ? { log } : {});
  } catch (err) {
    if (err instanceof MailbagError && err.code === 'locked') {
      // a file there that is not a lock (another version's, junk too young to take over:
      // lib/spool/lock.ts) is no session: it stops every session with the peer until it is
      // removed, so it is said as it is and fails (75), never 'locked' (dispatch: skipped, 0)
      const text = await readFile(spool.path('locks', `session-${peer}.lock`), 'utf8').catch(() => undefined);
      if (text !== undefined && parseLock(text) === undefined) throw new SpoolError(err.message, { cause: err });
      throw new SessionError('locked', `another session with ${peer} is running (lock session-${peer} in ${spool.path('locks')})`, { cause: err });
    }
    throw err;
  }
}

/** The transport a peer's configuration asks for (lib/transport/for-peer.ts). */
export { transportForPeer as transportFor };

/**
 * Record when the last session with PEER ended (read by peersDue for the poll interval).
 * Atomic (a tmp file renamed over it) but not fsynced, so not commitFile: a crash that
 * loses it costs one poll before it is due, while the fsyncs cost 3–15 ms between a
 * session's end and the process's exit, which `mailbag sync` waits for.
 */
async function markSession(spool: Spool, peer: string): Promise<void> {
  await spool.ensureDir('bags');
  const tmp = join(spool.tmpDir, tmpName('last'));
  try {
    await writeFile(tmp, `${new Date().toISOString()}\n`, { mode: FILE_MODE, flag: 'wx' });
    await rename(tmp, spool.path('bags', `${peer}.last`));
  } catch (err) {
    await rm(tmp, { force: true });
    throw spoolErrorFrom(err, `recording the session with ${peer}`);
  }
}

async function lastSession(spool: Spool, peer: string): Promise<number | undefined> {
  try {
    const t = Date.parse((await readFile(spool.path('bags', `${peer}.last`), 'utf8')).trim());
    return Number.isNaN(t) ? undefined : t;
  } catch {
    return undefined;
  }
}

export interface SyncOptions extends SessionHooks {
  config: Config;
  peer: string;
  /** default: from the peer's configuration */
  transport?: Transport;
  spool?: Spool;
  /** environment of the transport command (ssh's SSH_AUTH_SOCK, PATH): the calling command's, default process.env */
  env?: NodeJS.ProcessEnv;
  /** the command's informational lines (a junk lock file taken over): a no-op for --quiet; default stderr */
  log?: (line: string) => void;
}

/** Dial one peer and run one session, both directions. */
export async function syncPeer(o: SyncOptions): Promise<SessionResult> {
  const peer = o.config.peers[o.peer];
  if (!peer) {
    const { requirePeer } = await import('../config/index.js');
    requirePeer(o.config, o.peer);
    throw new ConfigError(`unknown peer ${o.peer}`);
  }
  if (peer.unusedKeys) {
    (o.log ?? ((l: string) => void process.stderr.write(`${l}\n`)))(
      `${o.peer}: not used with transport = "command": ${peer.unusedKeys.join(', ')} (put them in the command's argv or in ssh_config, and remove them from [peers.${o.peer}])`,
    );
  }
  const spool = o.spool ?? (await Spool.open(o.config.spool, { create: true }));
  const lock = await lockPeer(spool, o.peer, o.log);
  try {
    const store = storeFor(o.config, spool, o.peer, peer);
    // the spool's recovery, the scan of our queue and the first bags run while the link
    // comes up (an SSH handshake, sshd and the far serve's start-up are the longer)
    const opened = store.open();
    opened.catch(() => {});
    const early = new EarlySend({ store, codecs: codecsFor(peer), caps: receiveCaps(o.config), site: o.config.site, ready: opened, ...(o.trace ? { trace: o.trace } : {}) });
    const giveUp = async (): Promise<void> => {
      early.stop();
      await early.settled();
      await opened.catch(() => undefined);
    };
    let link: Link;
    try {
      // the site names our --peer in a refused key's message; the trace gets the ssh steps
      const transport = o.transport ?? (await transportForPeer(peer, o.env ?? process.env, o.trace, { site: o.config.site }));
      link = await transport.connect();
    } catch (err) {
      await giveUp();
      if (err instanceof MailbagError) throw err;
      throw new SessionError('unreachable', `cannot reach ${o.peer}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    try {
      await opened;
    } catch (err) {
      await giveUp();
      link.abort(err instanceof Error ? err : new Error(String(err)));
      await link.done.catch(() => undefined);
      throw err;
    }
    try {
      return await sessionOn(link, store, spool, peer, { ...o, scanEarly: true, early });
    } finally {
      await giveUp();
    }
  } finally {
    await lock.release();
  }
}

function hooks(o: SessionHooks): SessionHooks {
  return {
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(o.trace ? { trace: o.trace } : {}),
    software: o.software ?? 'mailbag',
  };
}

/** One session on a link, in either role, then the time it ended (dispatch's poll). */
async function sessionOn(link: Link, store: SessionStore, spool: Spool, peer: PeerConfig, o: SessionHooks & { config: Config; peer: string; scanEarly?: boolean; early?: EarlySend; opened?: Promise<unknown> }): Promise<SessionResult> {
  const result = await runSession({
    link,
    store,
    site: o.config.site,
    peer: o.peer,
    codecs: codecsFor(peer),
    caps: receiveCaps(o.config),
    keepaliveMs: peer.keepaliveMs || 15_000,
    ...(o.scanEarly ? { scanEarly: true } : {}),
    ...(o.early ? { early: o.early } : {}),
    ...(o.opened ? { opened: o.opened } : {}),
    ...hooks(o),
  });
  await markSession(spool, o.peer);
  return result;
}

export interface ServeOptions extends SessionHooks {
  config: Config;
  /** from the forced command's --peer: the only identity this session will accept */
  peer: string;
  link: Link;
  spool?: Spool;
}

/**
 * The far end of a session on `link` (stdin/stdout of a forced command, an embedded SSH
 * server's exec channel). The peer reads and acknowledges only out/PEER/ and submits
 * only into in/PEER/, whatever it sends.
 */
export async function serveLink(o: ServeOptions): Promise<SessionResult> {
  if (!NAME_RE.test(o.peer) || o.peer.length > 64) {
    await refuseSession(o.link, 'peer-refused', 'this key has no valid peer name');
    throw new ConfigError(`--peer ${JSON.stringify(o.peer.slice(0, 80))} is not a peer name`, { code: 'usage' });
  }
  const peer = Object.hasOwn(o.config.peers, o.peer) ? o.config.peers[o.peer] : undefined;
  if (!peer) {
    await refuseSession(o.link, 'peer-refused', `${o.config.site} does not know a peer called ${o.peer}`);
    throw new ConfigError(`unknown peer "${o.peer}": add a [peers.${o.peer}] section${o.config.file ? ` to ${o.config.file}` : ''}`, { code: 'unknown-peer' });
  }
  const spool = o.spool ?? (await Spool.open(o.config.spool, { create: true }));
  let lock: Lock;
  try {
    lock = await lockPeer(spool, o.peer);
  } catch (err) {
    // 'locked' only for another session holding it: a lock that could not be written (a
    // full disk) or a file there that is no lock is a failure the dialer must not skip
    const code = err instanceof MailbagError && (err.code === 'locked' || err.code === 'spool-full' || err.code === 'spool') ? err.code : 'spool';
    await refuseSession(o.link, code, err instanceof Error ? err.message : String(err));
    throw err;
  }
  try {
    // the far end receives in nearly every session: its stage worker (the stager runs
    // there) starts now, beside the store's recovery and the HELLO, not at the first OFFER
    prestartStageWorker();
    const store = storeFor(o.config, spool, o.peer, peer);
    // our HELLO goes out while the store opens (its recovery): nothing in it depends on
    // the store; the session handles nothing the client sends before the store is open,
    // and a store that cannot be opened ends it with ERROR
    const opened = store.open();
    opened.catch(() => {});
    try {
      return await sessionOn(o.link, store, spool, peer, { ...o, opened });
    } finally {
      // never release the lock while the recovery still runs
      await opened.catch(() => undefined);
    }
  } finally {
    await lock.release();
  }
}

/**
 * Fail for good the jobs queued for `peer` longer than the queue lifetime (to
 * failed/PEER, their senders owed a notice the runner sends), also while the peer is
 * unreachable. Under the session lock; undefined when a session holds it (that session
 * has the jobs in its bags; the next call expires them).
 */
export async function expireQueued(
  config: Config,
  peer: string,
  o: { spool?: Spool; now?: Date; log?: (line: string) => void; bootClock?: BootReading | null } = {},
): Promise<string[] | undefined> {
  const spool = o.spool ?? (await Spool.open(config.spool, { create: true }));
  // nothing old queued (the usual case): no lock, no store
  const now = o.now ?? new Date();
  // the wall clock's steps forward: a job made before one counts its age from its id time
  // plus the step, not as weeks old once NTP set a clock that was behind (clock.ts)
  const steps = await clockSteps(spool, now.getTime(), o.bootClock === undefined ? await readBootClock() : (o.bootClock ?? undefined));
  const names = await readdir(spool.path('out', peer)).catch(() => [] as string[]);
  // (one made "in the future", by a clock since set back, is counted from its arrival: the store looks)
  if (!names.some((n) => isJobId(n) && (now.getTime() - onTodaysClock(jobIdTime(n), steps) > config.queueLifetimeMs || jobIdTime(n) > now.getTime()))) return [];
  let lock: Lock;
  try {
    lock = await lockPeer(spool, peer, o.log);
  } catch (err) {
    if (err instanceof MailbagError && err.code === 'locked') return undefined;
    throw err;
  }
  try {
    const store = storeFor(config, spool, peer, config.peers[peer]);
    await store.open();
    return await store.expireQueued(config.queueLifetimeMs, now, steps);
  } finally {
    await lock.release();
  }
}

/**
 * The peers whose old outgoing jobs are expired: every configured one, and any the
 * configuration no longer has that still has a directory in out/ (removed while jobs for
 * it were queued: they would never be sent, nor ever fail).
 */
export async function peersToExpire(config: Config): Promise<string[]> {
  const gone = (await readdir(join(config.spool, 'out')).catch(() => [] as string[])).filter((n) => isName(n) && !Object.hasOwn(config.peers, n));
  return [...Object.keys(config.peers), ...gone].sort();
}

export interface DispatchEntry {
  peer: string;
  why: 'queued' | 'poll';
  result?: SessionResult;
  error?: MailbagError;
  skipped?: string;
}

/** The peers a dispatcher should dial now: work queued for them, or their poll interval passed. */
export async function peersDue(config: Config, spool: Spool, now = Date.now()): Promise<{ peer: string; why: 'queued' | 'poll' }[]> {
  const due: { peer: string; why: 'queued' | 'poll' }[] = [];
  for (const name of Object.keys(config.peers).sort()) {
    const p = config.peers[name]!;
    const dialable = p.transport === 'command' ? (p.command?.length ?? 0) > 0 : p.host !== undefined;
    if (!dialable) continue;
    const queued = (await spool.listJobs('out', name)).length > 0;
    if (queued) {
      due.push({ peer: name, why: 'queued' });
      continue;
    }
    const last = await lastSession(spool, name);
    // a last session in the future was marked by a clock since set back (a board without an
    // RTC that booted ahead, then NTP): due now, or it would wait until the clock caught up
    if (p.pollMs > 0 && (last === undefined || last > now || now - last >= p.pollMs)) due.push({ peer: name, why: 'poll' });
  }
  return due;
}

/** One session with every peer that is due (sequentially); a peer already in a session is skipped. */
export async function dispatchPeers(o: SessionHooks & { config: Config; transports?: Record<string, Transport>; env?: NodeJS.ProcessEnv; log?: (line: string) => void }): Promise<DispatchEntry[]> {
  const spool = await Spool.open(o.config.spool, { create: true });
  const out: DispatchEntry[] = [];
  for (const d of await peersDue(o.config, spool)) {
    try {
      const t = o.transports?.[d.peer];
      const result = await syncPeer({ ...o, peer: d.peer, spool, ...(t ? { transport: t } : {}) });
      out.push({ ...d, result });
    } catch (err) {
      const e = err instanceof MailbagError ? err : new SessionError('internal', String(err));
      if (e.code === 'locked') out.push({ ...d, skipped: e.message });
      else out.push({ ...d, error: e });
    }
  }
  return out;
}

/**
 * Whether jobs from `peer` wait in in/PEER/ for the runner: a session that received
 * nothing may still have moved some there when it started (a killed session's committed
 * bag, docs/spool.md S7), and its run step should deliver them now. One directory read.
 */
export async function jobsWaiting(config: Config, peer: string): Promise<boolean> {
  const names = await readdir(join(config.spool, 'in', peer)).catch(() => [] as string[]);
  return names.some((n) => isJobId(n));
}

/**
 * Hand the jobs a session received from `peer` to the runner (lib/runner, `mailbag run
 * PEER`). A runner failure does not undo the session: the jobs wait in in/PEER/ for the
 * next run. It is returned in `unfinished` (temporary: 75), as a killed session's moves
 * that cannot be finished are, for the caller to report (sync and dispatch on stderr and
 * in their exit status, serve on stderr), never only logged.
 */
export async function runReceivedJobs(config: Config, peer: string, log?: (line: string) => void, env?: NodeJS.ProcessEnv): Promise<RunSummary> {
  try {
    const { runJobs } = await import('../runner/runner.js');
    // the MTA commands get the calling command's environment (MAIL_CONFIG, PATH)
    return await runJobs({ config, peers: [peer], ...(log ? { log } : {}), ...(env ? { env } : {}) });
  } catch (err) {
    const cause = asMailbagError(err);
    const error = new MailbagError(cause.temporary ? cause.code : 'internal', `${peer}: the received jobs wait in in/${peer}/ for the next mailbag run: ${cause.message}`, { cause });
    return { done: 0, retry: 0, failed: 0, skipped: 0, unfinished: [{ peer, error }] };
  }
}
