// `mailbag sync PEER`: one session with PEER, both directions. Exit 0 when everything
// queued both ways crossed; 75 when the peer could not be reached or the link broke
// (jobs stay queued); the table's code for configuration errors (host key 78, auth 77,
// the command line 64, the configuration 78).

import { loadConfig, formatSize } from '../config/index.js';
import { asMailbagError, MailbagError, SessionError } from '../errors.js';
import { expireQueued, jobsWaiting, runReceivedJobs, syncPeer, traceTime, type SessionProgress, type SessionResult } from '../session/index.js';
import { Spool } from '../spool/spool.js';
import { MAX_OPEN_OFFERS } from '../session/state.js';
import { dialEarly } from '../transport/early.js';
import { transportForPeer } from '../transport/for-peer.js';
import type { CliIo } from './io.js';
import { parseCommonArgs } from './options.js';
import { failureLine } from './run.js';

const USAGE = 'usage: mailbag sync PEER [--config FILE] [--no-run] [--quiet]';
/** sync's and dispatch's flags */
export const RUN_FLAGS = { '--no-run': 'no-run', '--quiet': 'quiet', '-q': 'quiet' };

/**
 * sync and dispatch answer an operator (a shell, cron, a timer), not an MTA: a command line
 * or configuration to fix is said with EX_USAGE 64 or EX_CONFIG 78, not the front doors'
 * 75 (which keeps an MTA's mail, and which a cron'd sync would retry for ever like a peer
 * that is down). Other errors are returned as they are.
 */
export function forOperator(err: unknown): unknown {
  if (!(err instanceof MailbagError)) return err;
  const code = err.code === 'usage' ? 'session-usage' : err.code === 'config' || err.code === 'unknown-peer' ? 'session-config' : undefined;
  return code ? new MailbagError(code, err.message, { cause: err }) : err;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  try {
    return await sync(argv, io);
  } catch (err) {
    throw forOperator(err);
  }
}

async function sync(argv: string[], io: CliIo): Promise<number> {
  const args = parseCommonArgs(argv, { command: 'mailbag sync', usage: USAGE, flags: RUN_FLAGS, words: 1 });
  if (args.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const peer = args.words[0];
  if (!peer) throw new MailbagError('usage', `mailbag sync: which peer? (${USAGE})`);
  const run = !args.flags.has('no-run');
  const quiet = args.flags.has('quiet');
  const cfg = loadConfig({ path: args.config, env: io.env, cwd: io.cwd });
  if (io.env.MAILBAG_TRACE) io.stderr.write(`${traceTime(new Date(performance.timeOrigin))} sync: process started; ${traceTime()} configuration loaded\n`);
  const started = Date.now();
  const progress = io.isTTY && !quiet ? progressPrinter(io) : undefined;
  // the link is dialled now (ssh2's load, the SSH handshake, the far serve's start), while
  // old jobs expire and syncPeer opens the spool and takes the session lock; the session
  // takes it over. One the session did not take (the lock is held, an error came first)
  // is torn down below: the far serve then sees a link that closed before any HELLO
  const peerConfig = cfg.peers[peer];
  const trace = io.env.MAILBAG_TRACE ? (l: string): void => void io.stderr.write(`${traceTime()} ${l}\n`) : undefined;
  const early = peerConfig ? dialEarly(() => transportForPeer(peerConfig, io.env, trace, { openEarly: true, site: cfg.site }), `peer ${peer}`) : undefined;
  let expired: string[];
  let result: SessionResult;
  const runLog = quiet ? undefined : (line: string): void => void io.stdout.write(`${line}\n`);
  // the spool's informational lines (a junk lock file taken over) go with the others
  const spoolLog = (line: string): void => runLog?.(line);
  // a killed session's committed jobs the run step could not move in (docs/spool.md S7):
  // a line on stderr each, also with --quiet, and exit 75 like mailbag run
  let unfinished: MailbagError | undefined;
  const runStep = async (): Promise<void> => {
    const summary = await runReceivedJobs(cfg, peer, runLog, io.env);
    // a notice given up is said also with --quiet, as mailbag run's summary and dispatch say it
    const n = summary.noticesGivenUp ?? 0;
    if (n > 0) io.stdout.write(`${peer}: ${n} notice${n === 1 ? '' : 's'} given up (mailbag failed ${peer})\n`);
    for (const u of summary?.unfinished ?? []) {
      io.stderr.write(`${failureLine(u.error, 'mailbag')}\n`);
      unfinished ??= u.error;
    }
  };
  try {
    // one spool for the expiry and the session (each opened its own before: two checks of
    // the whole tree and two sweeps of tmp/); none for a peer that is not configured
    const spool = peerConfig ? await Spool.open(cfg.spool, { create: true }) : undefined;
    // jobs queued longer than queue_lifetime fail first, also when the peer cannot be reached
    expired = spool ? ((await expireQueued(cfg, peer, { spool, log: spoolLog })) ?? []) : [];
    if (!quiet) for (const id of expired) io.stdout.write(`${peer}/${id}: failed: not delivered within the queue lifetime\n`);
    try {
      result = await syncPeer({
        config: cfg,
        peer,
        env: io.env,
        log: spoolLog,
        ...(spool ? { spool } : {}),
        ...(early ? { transport: early.transport } : {}),
        ...(progress ? { onProgress: progress.update } : {}),
        ...(trace ? { trace } : {}),
      });
      trace?.('sync: session over');
    } catch (err) {
      progress?.clear();
      // their senders are owed notices even though the session did not happen; and a
      // session that broke after this side committed jobs (the link cut after our ACK, the
      // far disk full) delivers them now, not at the next session or mailbag run. The exit
      // status stays the session's. Not while another session holds the lock (it runs them)
      const locked = err instanceof MailbagError && err.code === 'locked';
      if (run && (expired.length > 0 || (!locked && peerConfig !== undefined && (await jobsWaiting(cfg, peer))))) await runStep();
      throw err;
    } finally {
      progress?.clear();
    }
  } finally {
    await early?.release();
  }
  if (!quiet) io.stdout.write(`${summaryLine(peer, result, Date.now() - started)}\n`);
  // also after a refusal for good, an expiry or a job too large for the peer: the job is
  // in failed/ and its sender is owed a notice
  // also when it received nothing but its start moved in a killed session's jobs (S7)
  if (run && (result.received.jobs > 0 || result.refusedByPeer.length > 0 || result.held.length > 0 || expired.length > 0 || (await jobsWaiting(cfg, peer)))) {
    await runStep();
  }
  // what the far serve said (its run step's lines), as far as it has reached us by now:
  // nothing is waited for (docs/mailbag-sync.md)
  if (!quiet) for (const line of farLines(peer, result)) io.stdout.write(`${line}\n`);
  const code = checkDrained(peer, result);
  return unfinished ? asMailbagError(forOperator(unfinished)).exitCode : code;
}

/** 0 when everything crossed; otherwise throws a temporary error that says what did not. */
export function checkDrained(peer: string, r: SessionResult): number {
  if (r.drained) return 0;
  const parts = [
    ...r.refusedByPeer.map((x) => `${peer} refused bag ${x.bag.slice(0, 12)}: ${x.message} (${x.code})`),
    ...r.refusedByUs.map((x) => `refused bag ${x.bag.slice(0, 12)} from ${peer}: ${x.message} (${x.code})`),
    ...(r.held.length ? [`${r.held.length} job(s) larger than ${peer} accepts failed (see mailbag failed)`] : []),
    // a bag refused as a whole, no job of it named (docs/protocol.md §3 step 5)
    ...(r.alone ? [`${r.alone} job(s) of bags ${peer} refused as a whole go one per bag from the next session on`] : []),
    ...(r.failedAlone.length ? [`${r.failedAlone.length} job(s) ${peer} refused alone in their bag, while it took others, failed (see mailbag failed)`] : []),
    ...(r.heldAlone ? [`${r.heldAlone} job(s) ${peer} refused alone in their bag stay queued: it took no bag of this site's in this session (does ${peer} refuse every bag?)`] : []),
    ...(r.busy ? [`${r.busy} bag(s) ${peer} offered past ${MAX_OPEN_OFFERS} at once were refused for now (it offers them again next session)`] : []),
    ...(r.unsent ? [`${r.unsent} job(s) stay queued: ${peer} reads none of the codecs this site writes (its hello lists ${r.peerHello.codecs.join(', ') || 'none it knows'})`] : []),
  ];
  throw new SessionError('peer-refused', parts.join('; '));
}

/**
 * The far command's stderr after a session, a line each as `PEER said: LINE` (its text is
 * the peer's: control characters already '?'), and, when the far side was let go still at
 * work (a serve's run step after both BYEs: docs/protocol.md §4), one line saying that what
 * it says from then on is not shown here, and where to look
 */
export function farLines(peer: string, r: SessionResult): string[] {
  const far = r.farStderr?.();
  if (!far) return [];
  const lines = far.text.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');
  const out = lines.map((l) => `${peer} said: ${l}`);
  if (!far.exited) out.push(`${peer}: its mailbag serve went on after the session (its run step); what it says from then on is not shown here: mailbag status and mailbag failed on ${peer} show how its jobs went`);
  return out;
}

export function summaryLine(peer: string, r: SessionResult, ms: number): string {
  const dup = r.received.duplicates ? `, ${r.received.duplicates} already had` : '';
  return (
    `${peer}: sent ${r.sent.jobs} jobs in ${r.sent.bags} bags (${formatSize(r.sent.bytes)} of bags` +
    `${r.sent.skipped ? `, ${formatSize(r.sent.skipped)} resumed` : ''}), ` +
    `received ${r.received.jobs} jobs in ${r.received.bags} bags (${formatSize(r.received.mailBytes)} of mail${dup}); ` +
    `wire ${formatSize(r.wire.out)} out, ${formatSize(r.wire.in)} in; ${(ms / 1000).toFixed(1)} s`
  );
}

function progressPrinter(io: CliIo): { update: (p: SessionProgress) => void; clear: () => void } {
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      shown = true;
      const pct = (a: number, b: number): string => (b > 0 ? `${Math.min(100, Math.floor((100 * a) / b))}%` : '-');
      io.stderr.write(`\r\x1b[Ksending ${formatSize(p.sentBytes)} (${pct(p.sentBytes, p.sendTotal)}), ${p.sentJobs} jobs done; receiving ${formatSize(p.receivedBytes)} (${pct(p.receivedBytes, p.receiveTotal)}), ${p.receivedJobs} jobs`);
    },
    clear() {
      if (shown) io.stderr.write('\r\x1b[K');
    },
  };
}
