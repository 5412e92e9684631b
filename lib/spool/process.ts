// Is the process that holds a lock still alive? By pid (signal 0, see cleanup.ts), and
// on Linux also by the process's start time and the boot id, so a pid reused by another
// process after the holder died, or a lock from before a reboot, is seen dead.

import { readFileSync } from 'node:fs';
import { pidAlive } from './cleanup.js';

let bootIdCache: string | undefined | null = null;

/** this boot's id (Linux), or undefined where there is none */
export function bootId(): string | undefined {
  if (bootIdCache === null) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = undefined;
    }
  }
  return bootIdCache;
}

/** start time of a process in clock ticks since boot (Linux /proc), or undefined */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

export interface Holder {
  pid: number;
  /** /proc start time of the process, when known */
  start?: string | undefined;
  /** boot id when written, when known */
  boot?: string | undefined;
}

/** true unless the holder is certainly gone (dead pid, other boot, pid reused) */
export function holderAlive(h: Holder): boolean {
  const boot = bootId();
  if (h.boot && boot && h.boot !== boot) return false;
  if (!pidAlive(h.pid)) return false;
  if (h.start) {
    const now = processStartTime(h.pid);
    if (now !== undefined && now !== h.start) return false;
  }
  return true;
}
