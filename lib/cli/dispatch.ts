// `mailbag dispatch`: one session with every peer that has work queued or whose poll
// interval has passed, for cron or a systemd timer. A peer already in a session (its
// lock is held) is skipped, so two dispatchers never take the same mail.

import { loadConfig } from '../config/index.js';
import { MailbagError } from '../errors.js';
import { dispatchPeers, runReceivedJobs } from '../session/index.js';
import type { CliIo } from './io.js';
import { summaryLine } from './sync.js';

const USAGE = 'usage: mailbag dispatch [--config FILE] [--no-run] [--quiet]';

export async function main(argv: string[], io: CliIo): Promise<number> {
  let config: string | undefined;
  let run = true;
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') config = argv[++i];
    else if (a.startsWith('--config=')) config = a.slice(9);
    else if (a === '--no-run') run = false;
    else if (a === '--quiet' || a === '-q') quiet = true;
    else if (a === '--help' || a === '-h') {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    } else throw new MailbagError('usage', `unexpected argument ${JSON.stringify(a)} (${USAGE})`);
  }
  const cfg = loadConfig({ path: config, env: io.env, cwd: io.cwd });
  const started = Date.now();
  const entries = await dispatchPeers({ config: cfg });
  let firstError: MailbagError | undefined;
  for (const e of entries) {
    if (e.result) {
      if (!quiet) io.stdout.write(`${summaryLine(e.peer, e.result, Date.now() - started)}\n`);
      if (run && (e.result.received.jobs > 0 || e.result.refusedByPeer.length > 0)) await runReceivedJobs(cfg, e.peer, quiet ? undefined : (l) => io.stdout.write(`${l}\n`));
      if (!e.result.drained) io.stderr.write(`${e.peer}: not everything crossed (refused or held bags); see mailbag sync ${e.peer}\n`);
    } else if (e.skipped) {
      if (!quiet) io.stdout.write(`${e.peer}: skipped: ${e.skipped}\n`);
    } else if (e.error) {
      io.stderr.write(`${e.error.status} ${e.peer}: ${e.error.message}\n`);
      firstError ??= e.error;
    }
  }
  if (entries.length === 0 && !quiet) io.stdout.write('no peer has work queued or is due\n');
  if (firstError) return firstError.exitCode;
  return 0;
}
