// Helpers for tests that need a file system of their own: a tiny tmpfs (a full disk),
// a read-only mount (root ignores mode bits, so chmod cannot make a spool unwritable for
// us), a second file system inside the spool. We are root on the test machines; where
// mount is not permitted the test skips loudly, and under CI it fails instead.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { underCI } from '../../helpers/need.js';

let verdict: boolean | undefined;

/** true when this process may mount a tmpfs; otherwise a SKIP line (or a throw under CI) */
export function canMount(what: string): boolean {
  if (verdict === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'mailbag-mnt-probe-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore', timeout: 10_000 });
      execFileSync('umount', [dir], { stdio: 'ignore', timeout: 10_000 });
      verdict = true;
    } catch {
      verdict = false;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (verdict) return true;
  const line = `${what}: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)`;
  if (underCI) throw new Error(`under CI this test must run: ${line}`);
  process.stderr.write(`SKIP ${line}\n`);
  return false;
}

/** mount a tmpfs of `size` (e.g. '64k') on `dir` (made if missing) */
export function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe', timeout: 10_000 });
}

/** make a mount read-only in place */
export function remountReadOnly(dir: string): void {
  execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe', timeout: 10_000 });
}

/** unmount (lazily, so a test that failed with open files still cleans up) */
export function unmount(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe', timeout: 10_000 });
  } catch {
    // not mounted
  }
}

/**
 * Fill the file system at `at` to its last page (tmpfs is page granular): a file grown a
 * page at a time until a write fails. Returns the file, to remove when room is wanted back.
 */
export function fillUp(at: string): string {
  const file = join(at, 'filler');
  let size = 0;
  try {
    for (;;) {
      size += 4096;
      writeFileSync(file, Buffer.alloc(size, 1));
    }
  } catch {
    // full
  }
  return file;
}
