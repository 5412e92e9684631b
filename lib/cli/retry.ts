// `mailbag retry [PEER/]ID`: put one failed job back into in/PEER. Its failure is
// cleared and its queue lifetime restarts; recipients already accepted are kept, so
// they never get the message twice. The next `mailbag run` (or session) delivers it.

import { loadConfig } from '../config/index.js';
import { MailbagError } from '../errors.js';
import { findFailed, retryFailed } from '../runner/failed.js';
import { Spool } from '../spool/index.js';
import type { CliIo } from './io.js';

export const RETRY_USAGE = `Usage: mailbag retry [--config FILE] [PEER/]ID

Put a failed job (see mailbag failed) back for the runner.
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  let configPath: string | undefined;
  let name: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') {
      configPath = argv[++i];
      if (configPath === undefined) throw new MailbagError('usage', '--config needs a FILE');
    } else if (a.startsWith('--config=')) configPath = a.slice(9);
    else if (a === '--help' || a === '-h') {
      io.stdout.write(RETRY_USAGE);
      return 0;
    } else if (!a.startsWith('-') && name === undefined) name = a;
    else throw new MailbagError('usage', `mailbag retry: unexpected argument ${JSON.stringify(a)} (see mailbag retry --help)`);
  }
  if (name === undefined) throw new MailbagError('usage', 'mailbag retry: which job? (see mailbag failed)');
  const config = loadConfig({ path: configPath, env: io.env, cwd: io.cwd });
  const spool = await Spool.open(config.spool);
  const ref = await findFailed(spool, name);
  const back = await retryFailed(spool, ref);
  io.stdout.write(`${back.peer}/${back.id} is back in in/${back.peer}; run: mailbag run --peer ${back.peer}\n`);
  return 0;
}
