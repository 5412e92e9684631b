// `mailbag serve --peer NAME`: the far end of a session on stdin/stdout, for an
// authorized_keys forced command (`command="mailbag serve --peer home",restrict`). The
// peer's identity is --peer and nothing else; stdout carries only protocol frames, so
// every log line goes to stderr.

import { loadConfig } from '../config/index.js';
import { MailbagError } from '../errors.js';
import { jobsWaiting, runReceivedJobs, serveLink, traceTime } from '../session/index.js';
import { stopStageWorker } from '../session/stage-ops.js';
import { streamLink } from '../transport/link.js';
import type { CliIo } from './io.js';
import { failureLine } from './run.js';

const USAGE = 'usage: mailbag serve --peer NAME [--config FILE] [--no-run]';
/** a session that failed so committed nothing and leaves the run step to others */
const NO_RUN_AFTER = new Set(['locked', 'usage', 'unknown-peer']);

/**
 * The environment of the programs serve runs for the peer's jobs (delivery.sendmail, the
 * actions): serve's own, without what the client may have chosen through sshd. Not
 * $SSH_ORIGINAL_COMMAND (the command the client asked for: the peer's own text), nor the
 * locale: sshd sets the variables AcceptEnv names from the client (Debian's sshd_config:
 * `AcceptEnv LANG LC_*`; the client sends them with SendEnv, Debian's ssh_config default
 * `SendEnv LANG LC_*`, or SetEnv), and whether LANG came from the client or the system
 * cannot be told apart here. Every LANG, LANGUAGE and LC_* is dropped, so the programs
 * run in the POSIX locale, the one Postfix gives its own daemons (LANG=C): messages in
 * English, bytes as bytes, whatever the peer asked for.
 */
export function peerFreeEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (k === 'SSH_ORIGINAL_COMMAND' || k === 'LANG' || k === 'LANGUAGE' || k.startsWith('LC_')) continue;
    out[k] = v;
  }
  return out;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  let peer: string | undefined;
  let config: string | undefined;
  let run = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--peer') peer = argv[++i];
    else if (a.startsWith('--peer=')) peer = a.slice(7);
    else if (a === '--config') config = argv[++i];
    else if (a.startsWith('--config=')) config = a.slice(9);
    else if (a === '--no-run') run = false;
    else if (a === '--help' || a === '-h') {
      io.stderr.write(`${USAGE}\n`);
      return 0;
    } else throw new MailbagError('usage', `unexpected argument ${JSON.stringify(a)} (${USAGE})`);
  }
  if (!peer) throw new MailbagError('usage', `--peer NAME is required: it is the identity of the key this runs for (${USAGE})`);
  const cfg = loadConfig({ path: config, env: io.env, cwd: io.cwd });
  if (io.env.MAILBAG_TRACE) io.stderr.write(`${traceTime(new Date(performance.timeOrigin))} serve: process started; ${traceTime()} configuration loaded\n`);
  const link = streamLink(io.stdin, io.stdout, 'stdio');
  const trace = io.env.MAILBAG_TRACE ? (l: string): void => void io.stderr.write(`${traceTime()} ${l}\n`) : undefined;
  // the session's stage worker (started at its start, unref'd) is stopped when this
  // process is done with it, bounded, rather than left for the exit: anything of it that
  // kept the process alive would hold the link open too, and the dialer would wait
  // CLOSE_GRACE_MS for our exit status (as an idle worker did before 10d54e5)
  // a log line must not end the process when whatever read our stderr is gone (sshd's
  // side of a cut link): the run step after a broken session still has jobs to deliver
  io.stderr.on('error', () => {});
  const runEnv = peerFreeEnv(io.env);
  const runStep = async (): Promise<void> => {
    const summary = await runReceivedJobs(cfg, peer, (line) => io.stderr.write(`${line}\n`), runEnv);
    // stdout is the link: a killed session's moves that could not be finished go to stderr
    for (const u of summary?.unfinished ?? []) io.stderr.write(`${failureLine(u.error, 'mailbag')}\n`);
  };
  try {
    let result;
    try {
      result = await serveLink({
        config: cfg,
        peer,
        link,
        ...(trace ? { trace } : {}),
      });
      trace?.('serve: session over');
    } catch (err) {
      // a session that broke after this side committed jobs (the link cut after our ACK,
      // the client's disk full): they are delivered now, not at the next session or
      // mailbag run; the exit status stays the session's (a client's ERROR, spool-full
      // among them, is peer-refused). Not when another session holds the lock (it runs
      // them), nor for a peer that is not ours to serve
      if (run && !(err instanceof MailbagError && NO_RUN_AFTER.has(err.code)) && (await jobsWaiting(cfg, peer))) await runStep();
      throw err;
    }
    io.stderr.write(
      `mailbag serve: ${peer}: sent ${result.sent.jobs} jobs, received ${result.received.jobs}` +
        `${result.received.duplicates ? ` (${result.received.duplicates} duplicates skipped)` : ''}\n`,
    );
    // also when this session received nothing but its start moved in the jobs of a killed
    // session (docs/spool.md S7): they are delivered now, not at the next run
    if (run && (result.received.jobs > 0 || (await jobsWaiting(cfg, peer)))) await runStep();
  } finally {
    await stopStageWorker();
    trace?.('serve: stage worker stopped');
  }
  return 0;
}
