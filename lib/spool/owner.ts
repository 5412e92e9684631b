// Who works on a spool: its owner. A mailbag command started as root on a spool that
// belongs to another user (the mailbag account) becomes that user — its uid, its
// primary group and its supplementary groups — before it opens anything. Otherwise what
// root creates there (bags/, ledger/, in/PEER, a job) belongs to root, mode 0700/0600,
// and every later run as the owner fails with EACCES until a `chown -R` (docs/setup.md).
// Least privilege: root needs none of its privileges to work on another user's spool.
//
// Only a process whose entry armed it (processIo(), lib/cli/io.ts: a command run as its
// own process) switches; loadConfig (lib/config/index.ts) asks right after it has found
// the spool. A library caller, or a test running a command in-process, never changes
// its process's identity.

import { statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { SpoolError } from '../errors.js';

/** The identity a process takes on to work on a spool. */
export interface SpoolOwner {
  uid: number;
  gid: number;
  /** the account's name, when the uid has one (passwd) */
  user: string | undefined;
  /** the account's home directory, when the uid has one */
  home: string | undefined;
}

interface Armed {
  env: NodeJS.ProcessEnv;
  trace: ((line: string) => void) | undefined;
}

let armed: Armed | undefined;

/** process's POSIX identity calls (absent on Windows; typed as optional by @types/node) */
interface PosixIds {
  geteuid(): number;
  getuid(): number;
  seteuid(id: number): void;
  setuid(id: number): void;
  setgid(id: number): void;
  setgroups(groups: number[]): void;
  initgroups(user: string, extraGroup: number): void;
  getgroups(): number[];
}

function posixIds(): PosixIds | undefined {
  return typeof process.geteuid === 'function' && typeof (process as { initgroups?: unknown }).initgroups === 'function'
    ? (process as unknown as PosixIds)
    : undefined;
}

/**
 * This process may become its spool's owner (see the top of this file): called once by
 * the entry of a command run as its own process. `env` is the process's environment
 * (HOME, USER and LOGNAME become the owner's); `trace` gets one line when it switches.
 */
export function armSpoolOwnerSwitch(env: NodeJS.ProcessEnv, trace?: (line: string) => void): void {
  armed = { env, trace };
}

export function spoolOwnerSwitchArmed(): boolean {
  return armed !== undefined;
}

/**
 * The uid and gid of the spool root's owner when a process with effective uid `euid`
 * must become them: euid is 0 and the root (followed if a symbolic link) belongs to
 * another uid. A spool not made yet goes by the nearest directory above it that exists:
 * made in the account's directory (a spool in its home), it is made as the account, not
 * as root (whose spool the account could not use, and root would make directories where
 * another user can move things under it); in root's directory (/var/spool), by root.
 * undefined when there is nothing to switch to (a non-root process cannot switch and
 * gets EACCES where it may not write).
 */
export function ownerToBecome(spool: string, euid: number | undefined): { uid: number; gid: number } | undefined {
  if (euid !== 0) return undefined;
  for (let p = resolve(spool); ; p = dirname(p)) {
    const st = statSync(p, { throwIfNoEntry: false });
    if (st) return st.uid === 0 ? undefined : { uid: st.uid, gid: st.gid };
    if (dirname(p) === p) return undefined;
  }
}

/** The passwd entry of `uid` (name, primary group, home), read as that uid: Node looks up only its own. */
function passwdOf(ids: PosixIds, uid: number): { user: string; gid: number; home: string } | undefined {
  try {
    ids.seteuid(uid);
    try {
      const u = userInfo();
      return { user: u.username, gid: u.gid, home: u.homedir };
    } finally {
      ids.seteuid(0);
    }
  } catch {
    return undefined;
  }
}

/**
 * Become the owner of `spool` when armed and this process is root on another user's
 * spool (ownerToBecome): supplementary groups (initgroups, or only the group when the
 * uid has no account), then the gid, then the uid — real, effective and saved, so there
 * is no way back. Returns who it became, or undefined when nothing changed. A switch
 * that fails, or one that would keep root's group (gid 0), leaves a SpoolError
 * (temporary: exit 75), never a root process on the spool.
 */
export function becomeSpoolOwner(spool: string): SpoolOwner | undefined {
  const ids = posixIds();
  if (!armed || !ids) return undefined;
  const target = ownerToBecome(spool, ids.geteuid());
  if (!target) return undefined;
  const pw = passwdOf(ids, target.uid);
  const owner: SpoolOwner = { uid: target.uid, gid: pw?.gid ?? target.gid, user: pw?.user, home: pw?.home };
  if (owner.gid === 0) {
    // root's group is a privilege too (files of group root): `chown N SPOOL` leaves the
    // spool's group root's, which a uid without an account would take on
    const whose = pw ? `the primary group of ${pw.user}` : `the spool's group, taken by a uid without an account`;
    throw new SpoolError(
      `started as root on the spool ${spool}, which belongs to uid ${target.uid}${pw ? ` (${pw.user})` : ''}, and would keep root's group (gid 0: ${whose}): ` +
        `give the spool the account's own group (chown ${target.uid}:GROUP ${spool}) or run mailbag as that user`,
    );
  }
  try {
    if (owner.user !== undefined) ids.initgroups(owner.user, owner.gid);
    else ids.setgroups([owner.gid]);
    ids.setgid(owner.gid);
    ids.setuid(owner.uid);
  } catch (err) {
    throw new SpoolError(
      `started as root on the spool ${spool}, which belongs to uid ${target.uid}${owner.user ? ` (${owner.user})` : ''}, and could not switch to it: ${(err as Error).message}; run mailbag as that user`,
      { cause: err },
    );
  }
  if (ids.getuid() !== owner.uid || ids.geteuid() !== owner.uid) {
    throw new SpoolError(`started as root on the spool ${spool} of uid ${owner.uid}: still uid ${ids.geteuid()} after switching; run mailbag as that user`);
  }
  const { env, trace } = armed;
  if (owner.home !== undefined) env.HOME = owner.home;
  if (owner.user !== undefined) env.USER = env.LOGNAME = owner.user;
  trace?.(
    `mailbag: started as root; the spool ${spool} belongs to uid ${owner.uid}${owner.user ? ` (${owner.user})` : ''}: ` +
      `now running as uid ${owner.uid}, gid ${owner.gid}, groups ${ids.getgroups().join(',')}`,
  );
  return owner;
}
