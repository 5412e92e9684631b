// Cleanup at start: a tmp file whose writer died is a leftover (the write never
// committed, so it holds no job that exists anywhere else only). It is removed when the
// pid in its name is not alive, or when it has not been written to for
// LIMITS.staleTmpMs (the pid was reused). A live writer's file is never touched.

import { readdirSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LIMITS } from '../limits.js';
import { lstatOrUndefined } from './commit.js';

/** true unless the pid certainly names no running process */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

export interface CleanupReport {
  removed: string[];
  kept: string[];
}

/** Remove the leftovers of dead writers in `tmpDir` (see the module comment). */
export async function cleanupTmp(tmpDir: string, now: number = Date.now()): Promise<CleanupReport> {
  const report: CleanupReport = { removed: [], kept: [] };
  let names: string[];
  try {
    names = readdirSync(tmpDir); // sync: usually empty, and read once per process
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return report;
    throw err;
  }
  for (const name of names) {
    const path = join(tmpDir, name);
    const m = /^(\d{1,10})\./.exec(name);
    const pid = m ? Number(m[1]) : undefined;
    const st = await lstatOrUndefined(path);
    if (!st || st.isDirectory()) continue;
    const old = now - st.mtimeMs > LIMITS.staleTmpMs;
    const dead = pid === undefined ? false : pid !== process.pid && !pidAlive(pid);
    if (dead || old) {
      try {
        await unlink(path);
        report.removed.push(name);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    } else {
      report.kept.push(name);
    }
  }
  return report;
}
