// `mailbag failed [PEER]`: the jobs that failed for good, with the reason the runner
// recorded and whether the sender's notice went out. `--json` for scripts.

import { loadConfig } from '../config/index.js';
import { MailbagError } from '../errors.js';
import { listFailed } from '../runner/failed.js';
import { Spool } from '../spool/index.js';
import type { CliIo } from './io.js';

export const FAILED_USAGE = `Usage: mailbag failed [--config FILE] [--json] [PEER]

List the jobs that failed for good (spool failed/PEER) with their reasons.
Put one back with: mailbag retry [PEER/]ID
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  let configPath: string | undefined;
  let json = false;
  let peer: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') {
      configPath = argv[++i];
      if (configPath === undefined) throw new MailbagError('usage', '--config needs a FILE');
    } else if (a.startsWith('--config=')) configPath = a.slice(9);
    else if (a === '--json') json = true;
    else if (a === '--help' || a === '-h') {
      io.stdout.write(FAILED_USAGE);
      return 0;
    } else if (!a.startsWith('-') && peer === undefined) peer = a;
    else throw new MailbagError('usage', `mailbag failed: unexpected argument ${JSON.stringify(a)} (see mailbag failed --help)`);
  }
  const config = loadConfig({ path: configPath, env: io.env, cwd: io.cwd });
  const spool = await Spool.open(config.spool);
  const jobs = await listFailed(spool, peer);
  if (json) {
    io.stdout.write(`${JSON.stringify(jobs, null, 2)}\n`);
    return 0;
  }
  if (jobs.length === 0) {
    io.stdout.write(peer ? `no failed jobs for ${peer}\n` : 'no failed jobs\n');
    return 0;
  }
  for (const j of jobs) {
    io.stdout.write(`${j.peer}/${j.id}  ${j.command}  from <${j.sender}>  to ${j.recipients.map((r) => `<${r}>`).join(' ')}\n`);
    io.stdout.write(`    created ${j.created}, failed ${j.failedAt ?? '?'}, notice ${j.noticeSent === undefined ? '?' : j.noticeSent ? 'sent' : 'pending'}\n`);
    io.stdout.write(`    ${j.reason.replace(/[\r\n]+/g, ' ')}\n`);
  }
  return 0;
}
