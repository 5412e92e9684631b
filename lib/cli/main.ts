// `mailbag COMMAND …`: finds the command in the table below and hands it the rest
// of the command line. Each command module is loaded only when it runs, so the
// front doors an MTA calls once per message start as fast as node allows.
//
// A command module exports `main(argv, io): Promise<number>` and parses its own
// arguments (accepting `--config FILE` like every other command).

import type { CliIo } from './io.js';
import { MailbagError } from '../errors.js';
import { splitCommandLine } from './run.js';

interface CommandEntry {
  summary: string;
  load: () => Promise<{ main: (argv: string[], io: CliIo) => Promise<number> }>;
}

// One line per command; keep them in the order `mailbag --help` should show.
export const COMMANDS: Record<string, CommandEntry> = {
  enqueue: { summary: 'queue a message (or a BSMTP stream) from stdin for a peer', load: () => import('./enqueue.js') },
  status: { summary: 'jobs and bytes queued per peer, each way, and the oldest job\'s age', load: () => import('./status.js') },
  lmtpd: { summary: 'accept mail over LMTP from the local MTA into the spool', load: () => import('./lmtpd.js') },
  serve: { summary: 'the far end of a session on stdin/stdout (authorized_keys forced command)', load: () => import('./serve.js') },
  sync: { summary: 'one session with a peer: send what is queued for it, receive what it has', load: () => import('./sync.js') },
  dispatch: { summary: 'a session with every peer that has work queued or is due to be polled', load: () => import('./dispatch.js') },
  demo: { summary: 'two sites, an embedded SSH server, mail both ways: what npm start runs', load: () => import('./demo.js') },
  run: { summary: 'deliver the jobs received from peers to the local MTA', load: () => import('./run-jobs.js') },
  failed: { summary: 'list jobs that failed for good, with reasons', load: () => import('./failed.js') },
  retry: { summary: 'put a failed job back for delivery', load: () => import('./retry.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length), 8);
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'Usage: mailbag [--config FILE] COMMAND [options] [args]',
    '',
    'Store-and-forward mail over SSH: rmail and BSMTP jobs in a crash-safe spool.',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `mailbag COMMAND --help` for a command\'s options. Manual pages: docs/.',
    '',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const { name, args } = splitCommandLine(argv);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? 64 : 0;
  }
  if (name === '--version' || name === '-V') {
    const { readFile } = await import('node:fs/promises');
    const { packageRoot } = await import('../config/index.js');
    // the package's root as the configuration finds it: lib/cli/ in the sources, dist/lib/cli/ built
    const pkg = JSON.parse(await readFile(`${packageRoot()}/package.json`, 'utf8')) as { version: string };
    io.stdout.write(`mailbag ${pkg.version}\n`);
    return 0;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    // `mailbag --quiet sync hub`: only --config may come before the command
    if (name.startsWith('-')) throw new MailbagError('usage', `unknown option '${name}' before the command: options go after it (mailbag COMMAND [options]; see mailbag --help)`);
    throw new MailbagError('usage', `unknown command '${name}' (see mailbag --help)`);
  }
  const mod = await entry.load();
  return mod.main(args, io);
}
