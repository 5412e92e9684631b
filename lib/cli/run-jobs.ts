// `mailbag run [--peer NAME]… [--now]`: fail the outgoing jobs older than the queue
// lifetime, then run the received jobs of every peer (or the named ones) once, through
// the whitelist and the configured delivery method. Prints one line per job outcome and
// a summary; exits 0 when the run itself worked (jobs that wait for a retry or failed
// are in the summary and in `mailbag failed`), 75 with one stderr line per peer when a
// killed session's committed jobs could not be moved in (they are not delivered).

import { loadConfig } from '../config/index.js';
import { asMailbagError, MailbagError } from '../errors.js';
import { runJobs } from '../runner/runner.js';
import { expireQueued, peersToExpire } from '../session/index.js';
import type { CliIo } from './io.js';
import { failureLine } from './run.js';

export const RUN_USAGE = `Usage: mailbag run [--config FILE] [--peer NAME]... [--now] [--quiet]

Deliver the jobs received from peers (spool in/PEER) to the local MTA.
  --peer NAME   only this peer (repeatable)
  --now         ignore the retry backoff: try every waiting job now
  --quiet       print only the summary
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  let configPath: string | undefined;
  const peers: string[] = [];
  let force = false;
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new MailbagError('usage', `${a} needs a value`);
      return v;
    };
    if (a === '--config') configPath = value();
    else if (a.startsWith('--config=')) configPath = a.slice(9);
    else if (a === '--peer') peers.push(value());
    else if (a === '--now') force = true;
    else if (a === '--quiet' || a === '-q') quiet = true;
    else if (a === '--help' || a === '-h') {
      io.stdout.write(RUN_USAGE);
      return 0;
    } else throw new MailbagError('usage', `mailbag run: unknown argument ${JSON.stringify(a)} (see mailbag run --help)`);
  }
  const config = loadConfig({ path: configPath, env: io.env, cwd: io.cwd });
  // a name the configuration does not have (a typo) would run nothing and exit 0
  const unknown = peers.filter((p) => !Object.hasOwn(config.peers, p));
  if (unknown.length > 0) {
    throw new MailbagError('unknown-peer', `no peer ${unknown.map((p) => JSON.stringify(p)).join(', ')} in the configuration (peers: ${Object.keys(config.peers).sort().join(', ') || 'none'})`);
  }
  // outgoing jobs older than queue_lifetime fail here too, so a cron'd run sends their
  // notices while the peer stays unreachable (a peer in a session now is left to it)
  // one peer whose expiry fails (its ledger does not read) keeps no other peer's mail
  // from being delivered: said after the run, with its exit status
  const failures: MailbagError[] = [];
  // informational lines (a junk lock file taken over among them) go to stdout, none for --quiet
  const log = quiet ? (): void => undefined : (line: string): void => void io.stdout.write(`${line}\n`);
  // (without --peer also a peer removed from the configuration while jobs for it wait)
  for (const peer of peers.length > 0 ? peers : await peersToExpire(config)) {
    try {
      for (const id of (await expireQueued(config, peer, { log })) ?? []) if (!quiet) io.stdout.write(`${peer}/${id}: failed: not delivered within the queue lifetime\n`);
    } catch (err) {
      const e = asMailbagError(err);
      failures.push(new MailbagError(e.code, `${peer}: cannot expire the old outgoing jobs: ${e.message}`, { cause: e }));
    }
  }
  const summary = await runJobs({
    config,
    peers: peers.length > 0 ? peers : undefined,
    force,
    env: io.env,
    log,
  });
  // a notice given up is an outcome, like a failed job: in the summary (also with --quiet), exit 0
  const givenUp = summary.noticesGivenUp ? `, ${summary.noticesGivenUp} notice${summary.noticesGivenUp === 1 ? '' : 's'} given up` : '';
  io.stdout.write(`run: ${summary.done} done, ${summary.retry} to retry, ${summary.failed} failed, ${summary.skipped} skipped${givenUp}\n`);
  // a killed session's committed jobs that could not be moved in are not delivered: a
  // failure (75 for a spool that cannot be read or written), after what could be delivered
  failures.push(...(summary.unfinished ?? []).map((u) => u.error));
  for (const e of failures) io.stderr.write(`${failureLine(e, 'mailbag')}\n`);
  return failures[0]?.exitCode ?? 0;
}
