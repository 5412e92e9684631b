// `mailbag dispatch`: one session with every peer that has work queued or whose poll
// interval has passed, for cron or a systemd timer. A peer already in a session (its
// lock is held) is skipped, so two dispatchers never take the same mail.

import { loadConfig } from '../config/index.js';
import { asMailbagError, MailbagError } from '../errors.js';
import { leftovers } from '../session/idle-recovery.js';
import { dispatchPeers, expireQueued, jobsWaiting, peersToExpire, runReceivedJobs, traceTime } from '../session/index.js';
import type { CliIo } from './io.js';
import { failureLine } from './run.js';
import { parseCommonArgs } from './options.js';
import { checkDrained, farLines, forOperator, RUN_FLAGS, summaryLine } from './sync.js';

const USAGE = 'usage: mailbag dispatch [--config FILE] [--no-run] [--quiet]';

export async function main(argv: string[], io: CliIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    // the command line or configuration: 64 / 78, as for mailbag sync
    throw forOperator(err);
  }
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  const args = parseCommonArgs(argv, { command: 'mailbag dispatch', usage: USAGE, flags: RUN_FLAGS });
  if (args.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const run = !args.flags.has('no-run');
  const quiet = args.flags.has('quiet');
  const cfg = loadConfig({ path: args.config, env: io.env, cwd: io.cwd });
  const started = Date.now();
  const log = quiet ? undefined : (l: string): void => void io.stdout.write(`${l}\n`);
  // the spool's informational lines (a junk lock file taken over) follow --quiet too
  const spoolLog = log ?? ((): void => undefined);
  // jobs queued longer than queue_lifetime fail first, for every peer (also one that
  // cannot be reached, or that only dials us); their notices go out below
  // (one whose expiry fails, its ledger not readable, stops no session with the others:
  // said on stderr, and the exit status)
  const expired = new Set<string>();
  let firstError: MailbagError | undefined;
  // the exit status: the first failure's, but a configuration error (auth 77, host-key 78:
  // retrying will not fix it) wins over a temporary one (75: a peer down), or a cron'd
  // dispatch would hide a changed host key behind another peer that is merely unreachable
  const failed = (err: MailbagError): void => {
    const error = asMailbagError(forOperator(err));
    if (!firstError || (firstError.temporary && !error.temporary)) firstError = error;
  };
  // (also a peer removed from the configuration while jobs for it wait in out/)
  for (const peer of await peersToExpire(cfg)) {
    let ids: string[];
    try {
      ids = (await expireQueued(cfg, peer, { log: spoolLog })) ?? [];
    } catch (err) {
      const e = asMailbagError(err);
      const error = new MailbagError(e.code, `${peer}: cannot expire the old outgoing jobs: ${e.message}`, { cause: e });
      io.stderr.write(`${failureLine(error, 'mailbag')}\n`);
      failed(error);
      continue;
    }
    if (ids.length > 0) expired.add(peer);
    for (const id of ids) log?.(`${peer}/${id}: failed: not delivered within the queue lifetime`);
  }
  // a session killed after its commit or ACK left work behind (docs/spool.md S4, S7): a
  // session with that peer finishes it when it starts, and the runner below delivers it
  // then, even when that session receives nothing; a peer not dialed now gets it finished
  // by the runner (lib/session/idle-recovery.ts)
  const leftBehind = new Set<string>();
  if (run) {
    const root = cfg.spool;
    for (const peer of Object.keys(cfg.peers)) {
      // a peer whose bags cannot be read (EACCES, EIO) stops no session with the others:
      // its run step below tries, and reports what fails
      const l = await leftovers(root, peer).catch(() => undefined);
      if (!l || l.staged.length + l.acked.length > 0) leftBehind.add(peer);
    }
  }
  // MAILBAG_TRACE: each session's frames and its link's ssh steps, as for mailbag sync
  const trace = io.env.MAILBAG_TRACE ? (l: string): void => void io.stderr.write(`${traceTime()} ${l}\n`) : undefined;
  const entries = await dispatchPeers({ config: cfg, env: io.env, log: spoolLog, ...(trace ? { trace } : {}) });
  // the run step; a killed session's committed jobs it could not move in are a failure
  const runStep = async (peer: string): Promise<void> => {
    const summary = await runReceivedJobs(cfg, peer, log, io.env);
    // a notice given up is said also with --quiet, as mailbag run's summary says it
    const n = summary.noticesGivenUp ?? 0;
    if (n > 0) io.stdout.write(`${peer}: ${n} notice${n === 1 ? '' : 's'} given up (mailbag failed ${peer})\n`);
    for (const u of summary?.unfinished ?? []) {
      io.stderr.write(`${failureLine(u.error, 'mailbag')}\n`);
      failed(u.error);
    }
  };
  for (const e of entries) {
    if (e.result) {
      const expiredHere = expired.delete(e.peer);
      const owed = leftBehind.delete(e.peer) || expiredHere;
      if (!quiet) io.stdout.write(`${summaryLine(e.peer, e.result, Date.now() - started)}\n`);
      if (run && (owed || e.result.received.jobs > 0 || e.result.refusedByPeer.length > 0 || e.result.held.length > 0)) await runStep(e.peer);
      // what the far serve said, as far as it has reached us by now (as mailbag sync prints it)
      if (!quiet) for (const line of farLines(e.peer, e.result)) io.stdout.write(`${line}\n`);
      // as for mailbag sync: what did not cross (refused bags, jobs too large for the peer,
      // failed here) makes the exit status, with the reasons on stderr
      try {
        checkDrained(e.peer, e.result);
      } catch (err) {
        const error = asMailbagError(err);
        io.stderr.write(`${failureLine(error, e.peer)}\n`);
        failed(error);
      }
    } else if (e.skipped) {
      if (!quiet) io.stdout.write(`${e.peer}: skipped: ${e.skipped}\n`);
    } else if (e.error) {
      io.stderr.write(`${e.error.status} ${e.peer}: ${e.error.message}\n`);
      failed(e.error);
      // a session that broke after we committed jobs (the link cut after our ACK, the far
      // disk full): they are delivered now, not at the next session or mailbag run, and the
      // exit status stays the session's. Not while another session holds the lock (that one
      // runs them); a peer owed the run step anyway gets it once, below
      if (run && e.error.code !== 'locked' && !leftBehind.has(e.peer) && !expired.has(e.peer) && (await jobsWaiting(cfg, e.peer))) await runStep(e.peer);
    }
  }
  // notices for the expired jobs of peers no session ran with (unreachable, locked, not
  // due), and the jobs a killed session left committed but not moved
  if (run) for (const peer of [...new Set([...expired, ...leftBehind])].sort()) await runStep(peer);
  if (entries.length === 0 && !quiet) io.stdout.write('no peer has work queued or is due\n');
  if (firstError) return firstError.exitCode;
  return 0;
}
