// `mailbag retry [PEER/]ID`: put one failed job back into in/PEER, or out/PEER for one
// that failed on its way out. Its failure is cleared and its queue lifetime restarts;
// recipients already accepted are kept, so they never get the message twice. The next
// `mailbag run` (or session) delivers it; the next session sends an outgoing one.

import { loadConfig } from '../config/index.js';
import { MailbagError } from '../errors.js';
import { findFailed, retryFailed } from '../runner/failed.js';
import { Spool } from '../spool/index.js';
import type { CliIo } from './io.js';
import { parseCommonArgs } from './options.js';
import { spoolMade } from './status.js';

export const RETRY_USAGE = `Usage: mailbag retry [--config FILE] [PEER/]ID

Put a failed job (see mailbag failed) back for the runner.
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  const args = parseCommonArgs(argv, { command: 'mailbag retry', usage: 'see mailbag retry --help', words: 1 });
  if (args.help) {
    io.stdout.write(RETRY_USAGE);
    return 0;
  }
  const name = args.words[0];
  if (name === undefined) throw new MailbagError('usage', 'mailbag retry: which job? (see mailbag failed)');
  const config = loadConfig({ path: args.config, env: io.env, cwd: io.cwd });
  // a spool not made yet has no failed job to put back: said as for an empty spool
  const spool = spoolMade(config, 'mailbag retry') ? await Spool.open(config.spool) : undefined;
  const ref = await findFailed(spool, name); // without a spool: "no failed job NAME"
  const back = await retryFailed(spool!, ref);
  // an outgoing job (expired, too big, refused by the peer) goes back to out/PEER; a
  // site that does not dial the peer (no host: the hub) waits for the peer's session
  const peer = Object.hasOwn(config.peers, back.peer) ? config.peers[back.peer] : undefined;
  const dials = peer !== undefined && (peer.transport === 'command' ? (peer.command?.length ?? 0) > 0 : Boolean(peer.host));
  const session = dials ? `mailbag sync ${back.peer}` : `when ${back.peer} connects: this site does not dial it`;
  const next = back.queue === 'out' ? `the next session sends it (${session})` : `run: mailbag run --peer ${back.peer}`;
  io.stdout.write(`${back.peer}/${back.id} is back in ${back.queue}/${back.peer}; ${next}\n`);
  return 0;
}
