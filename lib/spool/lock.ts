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
//
// A lock file that does not read as a lock (empty, zeros, cut short) is what a power cut
// leaves: the link reached the disk, the bytes did not (nothing is fsynced: a lock means
// nothing once its holder is gone, and a power cut ends every holder). No running mailbag
// ever shows such a file: its lock appears by link() already complete. Such junk is taken
// over like a dead holder's lock when it provably cannot be a running mailbag's: written
// before this boot (Linux: btime in /proc/stat), or unreadable for longer than
// JUNK_GRACE_MS. It is broken the same race-free way, with `junk-INODE-MTIMENS` as the
// nonce (a real nonce has no '-'), and its winner removes it only while the same inode
// still holds junk. A younger junk file is refused, and a lock of another version
// (`mailbag-lock 2`) is always refused, by name: it may be a newer mailbag's.

import { readFileSync, unlinkSync } from 'node:fs';
import { chmod, link, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MailbagError, SpoolError } from '../errors.js';
import { isName } from '../job/header.js';
import { FILE_MODE, spoolErrorFrom, tmpName } from './commit.js';
import { bootId, holderAlive, processStartTime } from './process.js';

export const LOCK_MAGIC_LINE = 'mailbag-lock 1\n';
const MAX_BREAK_TOKENS = 16;
/**
 * How long a lock file must have been unreadable as a lock (by its mtime) before it is
 * taken over though written during this boot. A mailbag's lock is complete when its name
 * appears, so no writer of ours is ever seen mid-way; this is the margin for anything else.
 */
export const JUNK_GRACE_MS = 10_000;

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
  /** where the line saying a junk lock file was taken over goes (default: stderr) */
  log?: (line: string) => void;
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
  const text = await readText(path);
  if (text === undefined) return undefined;
  return parseLock(text) ?? 'bad';
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The version a `mailbag-lock V` file says it is in, when it is not ours (1). */
function otherVersion(text: string): string | undefined {
  const m = /^mailbag-lock ([^\s]+)\n/.exec(text);
  return m && m[1] !== '1' ? m[1] : undefined;
}

/** when this boot began, in ms since the epoch (Linux: btime of /proc/stat), or undefined */
export function bootTimeMs(): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

interface Junk {
  /** the nonce its break tokens use: `junk-INODE-MTIMENS` */
  id: string;
  ino: bigint;
  mtimeNs: bigint;
  /** what it is and why it is stale, for the line saying it was taken over */
  what: string;
}

/**
 * Judge the file at `path`, which did not read as a lock: undefined when it is gone (or
 * reads as a lock now), a Junk when it provably is no running mailbag's, else the
 * SpoolError to refuse with.
 */
async function judgeJunk(path: string, now = Date.now()): Promise<Junk | SpoolError | undefined> {
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const text = await readText(path);
  if (text === undefined || parseLock(text) !== undefined) return undefined;
  const v = otherVersion(text);
  if (v !== undefined) return new SpoolError(`spool: ${path}: lock file version ${v} is not supported; this mailbag reads version 1 (remove it if no mailbag is running)`, { code: 'locked' });
  const refuse = new SpoolError(`spool: ${path} is not a mailbag lock file; remove it if no mailbag is running`, { code: 'locked' });
  const mtimeMs = Number(st.mtimeNs / 1_000_000n);
  const boot = bootTimeMs();
  const written = new Date(mtimeMs).toISOString();
  let why: string;
  if (boot !== undefined && mtimeMs < boot) why = `written ${written}, before this boot (${new Date(boot).toISOString()})`;
  else if (now - mtimeMs > JUNK_GRACE_MS) why = `unchanged since ${written}`;
  else return refuse;
  const what = st.size === 0n ? 'empty' : `${st.size} bytes that are not a lock`;
  return { id: `junk-${st.ino}-${st.mtimeNs}`, ino: st.ino, mtimeNs: st.mtimeNs, what: `${what}, ${why}` };
}

/** Whether `path` is still the junk file `j` (same inode and mtime, still not a lock). */
async function stillJunk(path: string, j: Junk): Promise<boolean> {
  const st = await stat(path, { bigint: true }).catch(() => undefined);
  if (!st || st.ino !== j.ino || st.mtimeNs !== j.mtimeNs) return false;
  const text = await readText(path);
  return text !== undefined && parseLock(text) === undefined && otherVersion(text) === undefined;
}

/**
 * Read-only: whether lock `name` in `locksDir` is held by a process that is alive (a lock
 * file of another version, or one being written, counts as held; no file: not held).
 * Takes nothing and writes nothing: for commands that only look (mailbag status).
 */
export async function lockHeldByLive(locksDir: string, name: string): Promise<boolean> {
  const text = await readText(join(locksDir, `${name}.lock`));
  if (text === undefined) return false;
  const info = parseLock(text);
  return info === undefined || alive(info);
}

function alive(info: LockInfo): boolean {
  // a holder on another host cannot be checked from here: never break its lock
  if (info.host !== hostname()) return true;
  return holderAlive(info);
}

/** Create `path` atomically with `info` as content; false when it already exists. */
async function createExclusive(path: string, info: LockInfo, tmpDir: string): Promise<boolean> {
  const tmp = join(tmpDir, tmpName('lock'));
  try {
    await writeFile(tmp, LOCK_MAGIC_LINE + JSON.stringify(info) + '\n', { mode: FILE_MODE, flag: 'wx' });
  } catch (err) {
    // made, then a full disk refused its content: not left in tmp/ for the next start
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
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
 * Remove the stale lock at `path` carrying `nonce` (for junk: its id, and `isStale` says
 * whether the file is still that junk), if this process wins the right to. Returns
 * 'removed' when this process removed it, 'gone' when the caller should simply try to
 * acquire again (the stale lock is gone or was replaced), false when another live
 * breaker is at work (wait for it).
 */
async function breakStale(
  locksDir: string,
  tmpDir: string,
  file: string,
  nonce: string,
  isStale?: () => Promise<boolean>,
): Promise<'removed' | 'gone' | false> {
  const path = join(locksDir, file);
  const prefix = `${file}.break.${nonce}.`;
  const stillStale = isStale ?? (async () => {
    const cur = await readLockFile(path);
    return cur !== undefined && cur !== 'bad' && cur.nonce === nonce;
  });
  for (let k = 1; k <= MAX_BREAK_TOKENS; k++) {
    const token = join(locksDir, `${prefix}${k}`);
    if (await createExclusive(token, myInfo(), tmpDir)) {
      if (raceDelayMs > 0) await sleep(Math.random() * raceDelayMs);
      let removed = false;
      try {
        if (await stillStale()) {
          // gone meanwhile is fine; any other failure (EPERM on an immutable file, EIO)
          // ends this attempt: called 'gone', it was tried again at once, for ever
          removed = await unlink(path).then(
            () => true,
            (err: NodeJS.ErrnoException) => {
              if (err.code === 'ENOENT') return false;
              throw err;
            },
          );
        }
      } finally {
        // tokens for nonce N mean nothing once the lock with nonce N is gone, and this
        // attempt's token nothing once it gave up
        for (const n of await readdir(locksDir)) {
          if (n.startsWith(prefix)) await unlink(join(locksDir, n)).catch(() => undefined);
        }
      }
      return removed ? 'removed' : 'gone';
    }
    const t = await readLockFile(token);
    if (t === undefined) return 'gone'; // cleaned up: the stale lock was removed meanwhile
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
  const path = join(locksDir, `${name}.lock`);
  // a junk file this process removed: said once, as taken over when this process then
  // holds the lock, as removed when another got in first
  const removed: { what?: string } = {};
  const say = (taken: boolean): void => {
    if (removed.what === undefined) return;
    const was = `${path} was not a mailbag lock file (${removed.what}); a power cut leaves such files`;
    (opts.log ?? stderrLine)(taken ? `mailbag: spool: took over lock ${name}: ${was}` : `mailbag: spool: removed a stale lock file: ${was}`);
  };
  try {
    const lock = await takeLock(locksDir, tmpDir, name, opts, removed);
    say(true);
    return lock;
  } catch (err) {
    say(false);
    throw err;
  }
}

async function takeLock(locksDir: string, tmpDir: string, name: string, opts: LockOptions, removed: { what?: string }): Promise<Lock> {
  const file = `${name}.lock`;
  const path = join(locksDir, file);
  const deadline = Date.now() + (opts.wait ? (opts.timeoutMs ?? 10_000) : 0);
  // a junk lock file another process is taking over: worth a short wait even without
  // `wait`, its breaker is done in milliseconds and then holds the lock (or lets go)
  let junkDeadline: number | undefined;
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
        const junk = await judgeJunk(path);
        if (junk === undefined) continue; // gone (or a lock now): try again
        if (junk instanceof SpoolError) throw junk;
        if (raceDelayMs > 0) await sleep(Math.random() * raceDelayMs);
        const r = await breakStale(locksDir, tmpDir, file, junk.id, () => stillJunk(path, junk));
        if (r === 'removed') removed.what = junk.what;
        if (r) continue;
        junkDeadline ??= Date.now() + JUNK_BREAKER_WAIT_MS;
        if (Date.now() >= Math.max(deadline, junkDeadline)) {
          throw new SpoolError(`spool: ${path} is not a mailbag lock file and another process is taking it over`, { code: 'locked' });
        }
      } else if (holder !== undefined && !alive(holder)) {
        if (raceDelayMs > 0) await sleep(Math.random() * raceDelayMs);
        if (await breakStale(locksDir, tmpDir, file, holder.nonce)) continue;
      }
    } catch (err) {
      throw spoolErrorFrom(err, `taking lock ${name}`);
    }
    if (holder === undefined) continue; // released just now: try again
    if (holder !== 'bad' && Date.now() >= deadline) {
      const where = holder.host === hostname() ? '' : ` on host ${holder.host} (remove ${path} if that host no longer uses this spool)`;
      throw new SpoolError(`lock ${name} is held by pid ${holder.pid}${where} since ${holder.since}`, { code: 'locked' });
    }
    await sleep(Math.min(pause, Math.max(1, Math.max(deadline, junkDeadline ?? 0) - Date.now())));
    pause = Math.min(pause * 1.5, 250);
  }
}

const JUNK_BREAKER_WAIT_MS = 2_000;

function stderrLine(line: string): void {
  try {
    process.stderr.write(`${line}\n`);
  } catch {
    // a closed stderr (serve after its sshd went) is no reason to fail
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
