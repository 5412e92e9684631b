// Small pieces shared by the real-MTA harnesses (postfix.ts, exim.ts) and their tests:
// running a child with a bounded time, polling with a bounded wait, a free loopback
// port, the unprivileged test user that owns Maildirs and runs pipe transports, and a
// temp dir that an unprivileged user may traverse.
//
//   const r = await run('/usr/sbin/postconf', ['-d', 'mail_version']);  // { code, stdout, stderr }
//   await waitFor(() => existsSync(f), 10_000, 'the file to appear');
//   const u = ensureTestUser();            // { name: 'mailbag-test', uid, gid } (root only)
//   const dir = makeSharedTempDir('pfx');  // 0755, removed with removeTempDir(dir)

import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** the built entry points; the tests build first (`npm test` runs `pretest`) */
export const mailbagBin = join(repoRoot, 'dist/bin/mailbag.js');
export const mailbagUuxBin = join(repoRoot, 'dist/bin/mailbag-uux.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  input?: Buffer | string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** killed with SIGKILL after this long (default 30 s); the result then has signal set */
  timeoutMs?: number;
}

/** Run a program (no shell) and collect its output; never rejects for a non-zero exit. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading all of its input; its status tells */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Poll `check` every `everyMs` until it returns a truthy value; throw after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
  everyMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePromise(port));
    });
  });
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

function lookupUser(name: string): TestUser | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { name, uid, gid };
  } catch {
    return undefined;
  }
}

/**
 * The unprivileged user that owns test Maildirs and temp spools and runs the MTAs'
 * pipe transports (Postfix's pipe and Exim refuse root). Created with useradd when
 * missing (root only; no home, no login). `system` makes a system account instead.
 */
export function ensureTestUser(name = 'mailbag-test', system = false): TestUser {
  const found = lookupUser(name);
  if (found) return found;
  const args = system
    ? ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name]
    : ['--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name];
  try {
    execFileSync('useradd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    // a concurrent test file may have created it a moment ago
    const again = lookupUser(name);
    if (again) return again;
    throw e;
  }
  const made = lookupUser(name);
  if (!made) throw new Error(`useradd ${name} did not create the user`);
  return made;
}

/** A fresh temp dir, mode 0755 so MTA daemons and the test user can traverse it. */
export function makeSharedTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mailbag-${prefix}-`));
  chmodSync(dir, 0o755);
  return dir;
}

/** mkdir -p a directory owned by `user`, mode 0700 (a Maildir root, a temp spool). */
export function makeOwnedDir(path: string, user: TestUser, mode = 0o700): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, user.uid, user.gid);
  chmodSync(path, mode);
  return path;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The MTAs run our bins as `user` (pipe transports): check that user can reach the
 * checkout and run node on it, and say what to fix when not (a checkout under a 0700
 * home directory is the usual cause).
 */
export async function assertUserCanRun(user: TestUser, bin = mailbagBin): Promise<void> {
  const r = await run(bin, ['--version'], { uid: user.uid, gid: user.gid, env: { PATH: '/usr/bin:/bin' }, timeoutMs: 30_000 });
  if (r.code !== 0) {
    throw new Error(
      `${user.name} cannot run ${bin} (exit ${r.code ?? r.signal}: ${r.stderr.trim()}); every directory above the checkout must be searchable by others (chmod o+x), as .ci/run ensures`,
    );
  }
}

/** Is the process with this pid still there (and not a zombie we could reap)? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
