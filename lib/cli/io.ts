// What a command may touch of its process: passed in so tests can run a command
// in-process with their own streams, environment and working directory.

import type { Readable, Writable } from 'node:stream';
import { armSpoolOwnerSwitch } from '../spool/owner.js';

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** true when stderr is a terminal (progress output is allowed) */
  isTTY: boolean;
}

/**
 * process.cwd(), or where it was when it has been removed (process.cwd() throws ENOENT
 * then): $PWD when absolute, else /. Never a throw: processIo() runs before anything
 * catches, and node's own exit 1 would make an MTA bounce the mail. An absolute path
 * resolves as usual; a relative one names a file that is not there, and says so.
 */
function currentDirectory(): string {
  try {
    return process.cwd();
  } catch {
    const pwd = process.env.PWD;
    return pwd !== undefined && pwd.startsWith('/') ? pwd : '/';
  }
}

/**
 * The io of the command this process runs (lib/cli/run.ts's runAsProcess). Being the
 * process also arms lib/spool/owner.ts: started as root on a spool that belongs to
 * another user, the command becomes that user when it loads its configuration (a line
 * on stderr with MAILBAG_TRACE).
 */
export function processIo(opts: { stdoutClosed?: () => void } = {}): CliIo {
  let stdoutArmed = false;
  let stdoutGone = false;
  armSpoolOwnerSwitch(process.env, process.env.MAILBAG_TRACE ? (line) => void process.stderr.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`) : undefined);
  // Getters, not values: touching process.stdin/stdout/stderr builds a stream each
  // (a few ms), and the front doors an MTA runs once per message may never need one.
  return {
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      const out = process.stdout;
      if (!stdoutArmed) {
        stdoutArmed = true;
        // the reader went away (`mailbag status | head`): what is still written goes
        // nowhere, with no "internal error" and no 75; opts.stdoutClosed decides whether
        // the command ends there. Any other write error stays fatal (lib/cli/run.ts).
        out.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'EPIPE' || (stdoutGone && err.code === 'ERR_STREAM_DESTROYED')) {
            if (!stdoutGone) {
              stdoutGone = true;
              opts.stdoutClosed?.();
            }
            return;
          }
          throw err;
        });
      }
      return out;
    },
    get stderr() {
      return process.stderr;
    },
    env: process.env,
    cwd: currentDirectory(),
    get isTTY() {
      return Boolean(process.stderr.isTTY);
    },
  };
}
