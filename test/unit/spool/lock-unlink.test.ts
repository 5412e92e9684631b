// A stale lock file (a dead holder's, or junk a power cut left) that cannot be removed:
// unlink(2) fails with EPERM (an immutable file, a security module's policy) or EIO (a
// failing disk) though a break token can be linked beside it. Taking the lock must end
// with an error that says so, not try again and again for ever: before, each attempt won
// a token, failed to remove the file, called that 'gone' and started over at once (no
// pause, no deadline), so mailbag run / sync / dispatch / serve never ended.
//
// The failure is injected into node:fs/promises' unlink for the lock's path only; every
// other file operation is the real one.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LOCK_MAGIC_LINE, Spool } from '../../../lib/spool/index.js';

const failing = vi.hoisted(() => new Map<string, string>());

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const unlink = async (p: Parameters<typeof real.unlink>[0]): Promise<void> => {
    const code = failing.get(String(p));
    if (code) throw Object.assign(new Error(`${code}: cannot remove, unlink '${String(p)}'`), { code, syscall: 'unlink', path: String(p) });
    return real.unlink(p);
  };
  return { ...real, unlink, default: { ...real, unlink } };
});

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lock-unlink-test-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => {
  failing.clear();
  rmSync(dir, { recursive: true, force: true });
});

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  if (r.error || typeof r.pid !== 'number' || r.pid <= 0) throw new Error(`could not start a child for a dead pid: ${String(r.error)}`);
  return r.pid;
}

/** spool.lock(name), or 'still trying' when it has not settled within `ms` */
async function lockWithin(name: string, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((r) => (timer = setTimeout(() => r('still trying'), ms)));
  try {
    return await Promise.race([spool.lock(name, { log: () => undefined }).then(
      (l) => l,
      (e: unknown) => e,
    ), late]);
  } finally {
    clearTimeout(timer);
  }
}

const STALE: [string, (path: string) => void][] = [
  [
    'a dead holder',
    (path) => writeFileSync(path, LOCK_MAGIC_LINE + JSON.stringify({ pid: deadPid(), host: hostname(), nonce: 'stale0nonce', since: '2026-01-01T00:00:00.000Z' }) + '\n'),
  ],
  [
    'junk older than the grace',
    (path) => {
      writeFileSync(path, '');
      const t = Date.now() / 1000 - 3600;
      utimesSync(path, t, t);
    },
  ],
];

describe('a stale lock file that cannot be removed', () => {
  it.each(STALE)('(%s) ends the attempt with the unlink error, the file and no token left', async (_kind, plant) => {
    for (const code of ['EPERM', 'EIO']) {
      const path = join(spool.root, 'locks', 'runner.hub.lock');
      plant(path);
      const before = readFileSync(path);
      failing.set(path, code);
      const err = await lockWithin('runner.hub', 5_000);
      expect(err, code).not.toBe('still trying');
      expect(err, code).toMatchObject({ exitCode: 75, temporary: true });
      expect((err as Error).message, code).toContain(`taking lock runner.hub: ${code}: cannot remove, unlink '${path}'`);
      expect(readFileSync(path), code).toEqual(before);
      expect(readdirSync(join(spool.root, 'locks')), code).toEqual(['runner.hub.lock']);
      // once it can be removed, the next attempt takes it
      failing.clear();
      const l = await spool.lock('runner.hub', { log: () => undefined });
      expect(l.info.pid).toBe(process.pid);
      await l.release();
      expect(existsSync(path)).toBe(false);
    }
  });
});
