// The command transport: spawn any argv (`ssh -C hub mailbag serve --peer home`, for
// people who want their own ssh_config) with no shell, talk over its stdin/stdout, keep
// its stderr for error messages, and map its exit status: ssh's own 255 is a link
// failure (or, by its message, a host key or authentication problem to fix).

import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { SessionError } from '../errors.js';
import { BaseLink } from './link.js';
import type { ConnectOptions, Link, Transport } from './types.js';

/** how long the command's stderr is still read after it has exited (a process it left may hold the pipe open) */
export const STDERR_AFTER_EXIT_MS = 1000;

export interface CommandOptions {
  /** program and arguments; argv[0] is looked up in PATH, never run through a shell */
  argv: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** after close() or abort(), how long the child gets after SIGTERM before SIGKILL (default 2 s) */
  killGraceMs?: number;
  /** one line per step (MAILBAG_TRACE): the child spawned, the child exited */
  trace?: ((line: string) => void) | undefined;
}

/** What an exit status of the transport command means, for the session's error. */
export function classifyCommandExit(argv0: string, code: number | null, signal: string | null, stderr: string): SessionError | undefined {
  const what = `${basename(argv0)} ${code !== null ? `exited with status ${code}` : `was killed by ${signal ?? 'a signal'}`}${stderr ? `: ${stderr}` : ''}`;
  if (code === 0) return undefined;
  if (code === 255 && basename(argv0) === 'ssh') {
    if (/host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .* not known|No .* host key is known/i.test(stderr)) {
      return new SessionError('host-key', `${what} — fix the host key in ssh's known_hosts (ssh-keygen -R HOST, then verify and add the new key)`);
    }
    if (/permission denied|too many authentication failures/i.test(stderr)) return new SessionError('auth', `${what} — check the key ssh offers and the authorized_keys entry on the far side`);
    if (/timed out/i.test(stderr)) return new SessionError('timeout', what);
    return new SessionError('unreachable', what);
  }
  return new SessionError(code === null ? 'link' : 'peer-refused', what);
}

export function commandTransport(o: CommandOptions): Transport {
  if (o.argv.length === 0 || !o.argv[0]) throw new SessionError('config', 'the transport command is empty');
  const describe = o.argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return {
    describe: () => describe,
    connect: (options?: ConnectOptions) => connectCommand(o, describe, options),
  };
}

async function connectCommand(o: CommandOptions, describe: string, options?: ConnectOptions): Promise<Link> {
  if (options?.signal?.aborted) throw new SessionError('link', `${describe}: connect aborted`);
  const [file, ...args] = o.argv as [string, ...string[]];
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: o.env ?? process.env, cwd: o.cwd, shell: false });
  // a pid: the program is running already (spawn() returns once its exec has succeeded);
  // said now, not at 'spawn', which comes a turn of the event loop later (10-20 ms on a
  // busy machine, and the timeline's step from sync's start to the ssh child is this one)
  if (child.pid !== undefined) o.trace?.(`command: ${basename(file)} spawned (pid ${child.pid})`);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => {
      child.off('error', reject);
      resolve();
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      // a program that is not there or may not run is the configuration's; anything else
      // (EMFILE, EAGAIN, ENOMEM: this system's limits for now) is tried again later
      const config = err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'ENOTDIR' || err.code === 'ENOEXEC';
      reject(new SessionError(config ? 'config' : 'unreachable', `cannot run the transport command ${describe}: ${err.code === 'ENOENT' ? `${file} not found` : err.message}`, { cause: err }));
    });
  });
  const grace = o.killGraceMs ?? 2000;
  let linkError: SessionError | undefined;
  const link: BaseLink = new BaseLink({
    input: child.stdout,
    output: child.stdin,
    describe,
    // after both BYEs (close({ detachAfterMs }), docs/protocol.md §4): our last bytes and our
    // EOF are in the command's stdin pipe; it forwards them and runs on until the far command
    // has finished (a far serve's moves and run step), and this process no longer waits for
    // it, nor stays alive for it or its pipes (still read while it does)
    detach: () => {
      child.unref();
      for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
    },
    teardown: (error) => {
      linkError ??= new SessionError('link', `${describe}: ${error ? `aborted: ${error.message}` : 'did not finish in time'}`, { cause: error });
      child.stdin.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }, grace).unref();
      }
    },
  });
  child.stderr.pipe(link.stderrTail);
  child.on('error', () => {});
  // 'close' waits for every stdio pipe: a process the command left running that holds its
  // stderr (a wrapper script that starts an agent or a tunnel in the background)
  // kept the link from settling after the command had exited, so every session waited out
  // close()'s grace and ended 'did not close'. Once it has exited, its stderr is read a
  // little longer (what it wrote is in the pipe already), then let go
  child.once('exit', (code, signal) => {
    o.trace?.(`command: ${basename(file)} exited (${code !== null ? `status ${code}` : signal ?? 'signal'})`);
    // (after one more turn of the loop's poll phase, so that a loop held up past the timer
    // still reads what the pipe holds before it goes)
    setTimeout(() => setImmediate(() => child.stderr.destroy()), STDERR_AFTER_EXIT_MS).unref();
  });
  const onAbort = (): void => link.abort(new SessionError('link', `${describe}: aborted`));
  options?.signal?.addEventListener('abort', onAbort, { once: true });
  child.once('close', (code, signal) => {
    options?.signal?.removeEventListener('abort', onAbort);
    const stderr = link.stderrTail.text();
    link.settle({ exitCode: code, signal, stderr, error: linkError ?? classifyCommandExit(file, code, signal, stderr) });
  });
  return link;
}
