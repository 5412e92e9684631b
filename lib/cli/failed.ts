// `mailbag failed [PEER]`: the jobs that failed for good, with the reason the runner
// recorded and whether the sender's notice went out. `--json` for scripts.

import { loadConfig, requirePeer } from '../config/index.js';
import { eachFailed, type FailedJob } from '../runner/failed.js';
import { peerText } from '../session/messages.js';
import { Spool } from '../spool/index.js';
import type { CliIo } from './io.js';
import { parseCommonArgs } from './options.js';
import { jsonSafe, spoolMade } from './status.js';

export const FAILED_USAGE = `Usage: mailbag failed [--config FILE] [--json] [PEER]

List the jobs that failed for good (spool failed/PEER) with their reasons.
Put one back with: mailbag retry [PEER/]ID
`;

/** sent; given up TIME (…); pending (deferred since …, next attempt after …); ? without a record */
function noticeWords(j: FailedJob): string {
  if (j.noticeSent === undefined) return '?';
  if (j.noticeSent) return 'sent';
  if (j.noticeGivenUp) return `given up ${j.noticeGivenUp}${j.noticeDeferredSince ? ` (the mail system deferred it from ${j.noticeDeferredSince} on)` : ''}`;
  if (j.noticeDeferredSince) return `pending (deferred since ${j.noticeDeferredSince}, next attempt after ${j.noticeNextAttempt ?? '?'})`;
  return 'pending';
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const args = parseCommonArgs(argv, { command: 'mailbag failed', usage: 'see mailbag failed --help', flags: { '--json': 'json' }, words: 1 });
  if (args.help) {
    io.stdout.write(FAILED_USAGE);
    return 0;
  }
  const json = args.flags.has('json');
  const peer = args.words[0];
  const config = loadConfig({ path: args.config, env: io.env, cwd: io.cwd });
  // a spool not made yet has no failed jobs (as mailbag status shows it empty); one that
  // cannot be read, or a spool path that is not a directory, is an error
  const spool = spoolMade(config, 'mailbag failed') ? await Spool.open(config.spool, { cleanup: false }) : undefined;
  if (peer !== undefined && !Object.hasOwn(config.peers, peer) && (!spool || (await spool.listJobs('failed', peer)).length === 0)) {
    // as mailbag status PEER: a peer no longer configured may still have failed jobs to
    // show; one with none is a typo, not a peer without failures (75, 4.3.5, the file to add it to)
    requirePeer(config, peer);
  }
  // each job written as it is read: memory does not grow with the failed queue
  const jobs: AsyncIterable<FailedJob> = spool ? eachFailed(spool, peer) : (async function* () {})();
  let n = 0;
  if (json) {
    // the shape JSON.stringify(array, null, 2) gives, one element at a time
    for await (const j of jobs) io.stdout.write(`${n++ === 0 ? '[\n' : ',\n'}${jsonSafe(JSON.stringify(j, null, 2)).replace(/^/gm, '  ')}`);
    io.stdout.write(n === 0 ? '[]\n' : '\n]\n');
    return 0;
  }
  for await (const j of jobs) {
    n++;
    // a received job's header and the reason (an MTA's output, a peer's REFUSE) are
    // others' text: no control character reaches the terminal (--json escapes them)
    io.stdout.write(`${j.peer}/${j.id}  ${peerText(j.command)}  from <${peerText(j.sender)}>  to ${j.recipients.map((r) => `<${peerText(r)}>`).join(' ')}\n`);
    io.stdout.write(`    created ${j.created}, failed ${j.failedAt ?? '?'}, notice ${noticeWords(j)}\n`);
    io.stdout.write(`    ${peerText(j.reason.replace(/[\r\n]+/g, ' '))}\n`);
  }
  if (n === 0) io.stdout.write(peer ? `no failed jobs for ${peer}\n` : 'no failed jobs\n');
  return 0;
}
