// The only place that touches process.exitCode and prints a failure: one stderr
// line that starts with an enhanced status code (`4.3.0 spool not writable: …`),
// then the sysexits code from lib/exit.ts. Anything unforeseen exits 75, so a bug
// of ours makes the MTA retry instead of bouncing mail.

import { asMailbagError, MailbagError } from '../errors.js';
import { processIo, type CliIo } from './io.js';

export type Main = (argv: string[], io: CliIo) => Promise<number>;

/** A `mailbag` command line: its command word and the words that command's main gets. */
export interface CommandLine {
  name: string | undefined;
  /** leading `--config FILE` / `--config=FILE` options first (every command takes them), then the rest */
  args: string[];
}

/**
 * Splits `mailbag [--config FILE]… COMMAND ARGS…`: `mailbag --config FILE COMMAND …` is
 * the same as `mailbag COMMAND --config FILE …`. Here rather than in main.ts, so the
 * session commands' bundle (scripts/bundle-front-doors.mjs) routes as main.ts does
 * without bringing in main.ts's table of every command.
 */
export function splitCommandLine(argv: readonly string[]): CommandLine {
  const args = [...argv];
  const global: string[] = [];
  while (args[0] === '--config' || args[0]?.startsWith('--config=')) {
    const a = args.shift()!;
    if (a === '--config') {
      const file = args.shift();
      if (file === undefined) throw new MailbagError('usage', '--config needs a FILE');
      global.push('--config', file);
    } else {
      global.push(a);
    }
  }
  const name = args.shift();
  return { name, args: [...global, ...args] };
}

/**
 * Format an error as the one line an MTA or admin reads. The program's name is put in
 * front once: a message that already begins with it (`rmail: no recipients`, as the
 * runner's failed/ reasons want it) is not prefixed again.
 */
export function failureLine(err: unknown, prefix?: string): string {
  const e = asMailbagError(err);
  const message = e.message.replace(/[\r\n]+/g, ' ').trim();
  const named = !prefix || message.startsWith(`${prefix}: `) || message.startsWith(`${prefix} `);
  return `${e.status} ${named ? '' : `${prefix}: `}${message}`;
}

/**
 * Commands whose only work is what they print (`status`, `failed`): when their reader
 * goes away they end there, as a Unix filter does. Every other command keeps doing its
 * work (a runner mid-delivery, rsmtp between transactions) with its output going nowhere.
 */
function endsOnClosedStdout(prefix: string, argv: string[]): boolean {
  if (prefix !== 'mailbag') return false;
  try {
    const name = splitCommandLine(argv).name;
    return name === 'status' || name === 'failed';
  } catch {
    return false;
  }
}

/**
 * End as a tool killed by SIGPIPE does (the shell says 141; nothing on stderr). Node
 * ignores SIGPIPE; a listener added and removed gives the signal back its default action
 * (libuv restores SIG_DFL), so the process can send it to itself. Exit 141 if it lives.
 */
function endBySigpipe(): void {
  const none = (): void => undefined;
  process.on('SIGPIPE', none);
  process.removeListener('SIGPIPE', none);
  process.kill(process.pid, 'SIGPIPE');
  process.exit(141);
}

/** Run a main function as this process: exit code and stderr from its outcome. */
export async function runAsProcess(main: Main, prefix: string): Promise<void> {
  // A last line of defence: an error escaping everything still exits 75, never 1.
  const onFatal = (err: unknown): void => {
    process.stderr.write(`4.3.0 ${prefix}: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(75);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  const io = processIo({ stdoutClosed: endsOnClosedStdout(prefix, process.argv.slice(2)) ? endBySigpipe : undefined });
  let code: number;
  try {
    code = await main(process.argv.slice(2), io);
  } catch (err) {
    io.stderr.write(`${failureLine(err, prefix)}\n`);
    code = asMailbagError(err).exitCode;
    if (io.env.MAILBAG_DEBUG && err instanceof Error) io.stderr.write(`${err.stack}\n`);
  }
  process.exitCode = code;
}
