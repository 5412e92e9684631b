// Exclusive named locks in the spool's locks/ directory. A lock is the file
// `locks/NAME.lock`, made complete in tmp/ and then hard-linked into place, so it
// appears atomically with its content (`mailbag-lock 1` + JSON: pid, host, boot id,
// process start time, a random nonce, since). link() fails when the name exists: only
// one process holds a lock.
//
// A lock whose holder is dead (pid gone, pid reused, or another boot) is broken, and
// breaking is race-free: to remove the stale lock with nonce N a process must first win
// the token `NAME.lock.break.N.1` (created the same atomic way). A process that finds
// that token held by a dead breaker tries token .2, and so on; only a token's winner
// removes the lock file, and only after re-reading that it still carries nonce N. Since
// nonces are never reused and one token name has one winner, two breakers can never
// both remove a lock, and nobody ever removes a live holder's lock.

import { readFileSync, unlinkSync } from 'node:fs';
import { chmod, link, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MailbagError, SpoolError } from '../errors.js';
import { isName } from '../job/header.js';
import { FILE_MODE, spoolErrorFrom, tmpName } from './commit.js';
import { bootId, holderAlive, processStartTime } from './process.js';

export const LOCK_MAGIC_LINE = 'mailbag-lock 1\n';
const MAX_BREAK_TOKENS = 16;

export interface LockInfo {
  pid: number;
  host: string;
  boot?: string | undefined;
  start?: string | undefined;
  nonce: string;
  since: string;
}

export interface LockOptions {
  /** wait for the holder to let go instead of failing at once (default false) */
  wait?: boolean;
  /** how long to wait at most (default 10 s); then SpoolError 'locked' */
  timeoutMs?: number;
}

export interface Lock {
  readonly name: string;
  readonly path: string;
  readonly info: LockInfo;
  /** Let go (idempotent). Removes the lock file only while it is still ours. */
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

// locks this process holds: removed synchronously when the process exits normally or
// through an uncaught exception; death by a signal or a power cut leaves them to stale
// recovery
const held = new Map<string, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [path, nonce] of held) {
      try {
        if (parseLock(readFileSync(path, 'utf8'))?.nonce === nonce) unlinkSync(path);
      } catch {
        // already gone
      }
    }
    held.clear();
  });
}

function randomNonce(): string {
  let s = '';
  while (s.length < 20) s += Math.floor(Math.random() * 0x100000000).toString(36);
  return s.slice(0, 20);
}

export function parseLock(text: string): LockInfo | undefined {
  if (!text.startsWith(LOCK_MAGIC_LINE)) return undefined;
  try {
    const v = JSON.parse(text.slice(LOCK_MAGIC_LINE.length)) as Partial<LockInfo>;
    if (typeof v.pid !== 'number' || typeof v.nonce !== 'string' || !/^[0-9a-z]{1,40}$/.test(v.nonce)) return undefined;
    return {
      pid: v.pid,
      host: typeof v.host === 'string' ? v.host : '',
      boot: typeof v.boot === 'string' ? v.boot : undefined,
      start: typeof v.start === 'string' ? v.start : undefined,
      nonce: v.nonce,
      since: typeof v.since === 'string' ? v.since : '',
    };
  } catch {
    return undefined;
  }
}

function myInfo(): LockInfo {
  return {
    pid: process.pid,
    host: hostname(),
    boot: bootId(),
    start: processStartTime(process.pid),
    nonce: randomNonce(),
    since: new Date().toISOString(),
  };
}

/** Read a lock or token file; undefined when it is gone, 'bad' when it is not ours. */
async function readLockFile(path: string): Promise<LockInfo | undefined | 'bad'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseLock(text) ?? 'bad';
}

function alive(info: LockInfo): boolean {
  // a holder on another host cannot be checked from here: never break its lock
  if (info.host !== hostname()) return true;
  return holderAlive(info);
}

/** Create `path` atomically with `info` as content; false when it already exists. */
async function createExclusive(path: string, info: LockInfo, tmpDir: string): Promise<boolean> {
  const tmp = join(tmpDir, tmpName('lock'));
  await writeFile(tmp, LOCK_MAGIC_LINE + JSON.stringify(info) + '\n', { mode: FILE_MODE, flag: 'wx' });
  try {
    await chmod(tmp, FILE_MODE); // whatever the umask took away
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Remove the stale lock at `path` carrying `nonce`, if this process wins the right to.
 * Returns true when the caller should simply try to acquire again (the stale lock is
 * gone or was replaced), false when another live breaker is at work (wait for it).
 */
async function breakStale(locksDir: string, tmpDir: string, file: string, nonce: string): Promise<boolean> {
  const path = join(locksDir, file);
  const prefix = `${file}.break.${nonce}.`;
  for (let k = 1; k <= MAX_BREAK_TOKENS; k++) {
    const token = join(locksDir, `${prefix}${k}`);
    if (await createExclusive(token, myInfo(), tmpDir)) {
      if (raceDelayMs > 0) await sleep(Math.random() * raceDelayMs);
      const cur = await readLockFile(path);
      if (cur !== undefined && cur !== 'bad' && cur.nonce === nonce) await unlink(path).catch(() => undefined);
      // tokens for nonce N mean nothing once the lock with nonce N is gone
      for (const n of await readdir(locksDir)) {
        if (n.startsWith(prefix)) await unlink(join(locksDir, n)).catch(() => undefined);
      }
      return true;
    }
    const t = await readLockFile(token);
    if (t === undefined) return true; // cleaned up: the stale lock was removed meanwhile
    if (t !== 'bad' && alive(t)) return false; // another breaker is at work: wait
    // that breaker died holding its token: try the next one
  }
  throw new SpoolError(`spool: cannot break stale lock ${path}: ${MAX_BREAK_TOKENS} dead breakers; remove ${path}.break.* by hand`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// For the contention tests only: a random pause of up to this many ms between judging a
// holder dead and acting on it, where a naive recovery would let two processes in.
const raceDelayMs = Number(process.env.MAILBAG_LOCK_RACE_DELAY_MS) || 0;

/**
 * Take the exclusive lock NAME (a peer name or a word like `runner`). Throws SpoolError
 * 'locked' (temporary) when another live process holds it and we may not or can no
 * longer wait. The lock is released by release(), on normal process exit, or — after a
 * crash — by the next process that finds its holder dead.
 */
export async function acquireLock(locksDir: string, tmpDir: string, name: string, opts: LockOptions = {}): Promise<Lock> {
  if (!isName(name)) throw new MailbagError('internal', `bad lock name ${JSON.stringify(name)}`);
  const file = `${name}.lock`;
  const path = join(locksDir, file);
  const deadline = Date.now() + (opts.wait ? (opts.timeoutMs ?? 10_000) : 0);
  let pause = 10;
  for (;;) {
    const info = myInfo();
    let holder: LockInfo | 'bad' | undefined;
    try {
      if (await createExclusive(path, info, tmpDir)) {
        installExitHook();
        held.set(path, info.nonce);
        return makeLock(name, path, info);
      }
      holder = await readLockFile(path);
      if (holder === 'bad') {
        throw new SpoolError(`spool: ${path} is not a mailbag lock file; remove it if no mailbag is running`, { code: 'locked' });
      }
      if (holder !== undefined && !alive(holder)) {
        if (raceDelayMs > 0) await sleep(Math.random() * raceDelayMs);
        if (await breakStale(locksDir, tmpDir, file, holder.nonce)) continue;
      }
    } catch (err) {
      throw spoolErrorFrom(err, `taking lock ${name}`);
    }
    if (holder === undefined) continue; // released just now: try again
    if (Date.now() >= deadline) {
      const where = holder.host === hostname() ? '' : ` on host ${holder.host} (remove ${path} if that host no longer uses this spool)`;
      throw new SpoolError(`lock ${name} is held by pid ${holder.pid}${where} since ${holder.since}`, { code: 'locked' });
    }
    await sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
    pause = Math.min(pause * 1.5, 250);
  }
}

function makeLock(name: string, path: string, info: LockInfo): Lock {
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    held.delete(path);
    const cur = await readLockFile(path);
    if (cur !== undefined && cur !== 'bad' && cur.nonce === info.nonce) await unlink(path).catch(() => undefined);
  };
  return { name, path, info, release, [Symbol.asyncDispose]: release };
}
