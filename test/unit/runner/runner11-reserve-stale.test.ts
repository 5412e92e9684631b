// A run (or one job) longer than a day kept its room for records (docs/spool.md R2a) in
// SPOOL/tmp/ files written once, and the spool's cleanup, run by any other process that
// opens the spool, takes a live pid's file not written to for 24 hours for a reused
// pid's (LIMITS.staleTmpMs): the room went, and a record that then met a full spool had
// none. A live reserve is now marked written every hour. The files are aged with utimes,
// the hour passed with a fake interval timer; the spool is a real tmpfs that fills.
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { newJobId } from '../../../lib/job/index.js';
import { RecordReserve, RESERVE_REFRESH_MS } from '../../../lib/runner/reserve.js';
import { emptyState, readState } from '../../../lib/runner/state.js';
import { cleanupTmp, Spool } from '../../../lib/spool/index.js';
import { LIMITS } from '../../../lib/limits.js';
import { canMount, fillUp, mountTmpfs, unmount } from '../spool/mount.js';

const mounted = canMount('runner11, a reserve older than the stale-tmp limit');
let dir: string | undefined;
let mnt: string | undefined;

beforeAll(() => {
  if (!mounted) return;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-runner11-stale-'));
  mnt = join(dir, 'mnt');
  mountTmpfs(mnt, '1m');
});
afterAll(() => {
  vi.useRealTimers();
  if (mnt) unmount(mnt);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!mounted)('a reserve held for longer than the stale-tmp limit survives another process\'s cleanup and still takes a record on a full spool', async () => {
  const spool = await Spool.open(join(mnt!, 'spool'), { create: true });
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  const room = new RecordReserve();
  try {
    await room.ensure(spool, [16384, 16384]);
    const files = (): string[] => readdirSync(spool.tmpDir).filter((n) => n.endsWith('.run-reserve'));
    expect(files()).toHaveLength(2);
    // made a day and an hour ago, as by a run that started then
    const then = new Date(Date.now() - LIMITS.staleTmpMs - 3_600_000);
    for (const n of files()) utimesSync(join(spool.tmpDir, n), then, then);
    // the run goes on: an hour passes
    vi.advanceTimersByTime(RESERVE_REFRESH_MS);
    const fresh = (): boolean => files().every((n) => Date.now() - statSync(join(spool.tmpDir, n)).mtimeMs < LIMITS.staleTmpMs);
    for (let i = 0; i < 100 && !fresh(); i++) await new Promise((r) => setTimeout(r, 10));
    // another process opens the spool (mailbag status, a front door): its cleanup
    const report = await cleanupTmp(spool.tmpDir);
    expect(report.removed).toEqual([]);
    expect(files()).toHaveLength(2);
    // the spool fills; the record takes the room held for it
    const filler = fillUp(mnt!);
    const id = newJobId();
    const state = { ...emptyState(), attempts: 1, lastError: 'kept' };
    const lines: string[] = [];
    expect(await room.write(spool, 'hub', id, state, (l) => lines.push(l))).toBe(true);
    expect(lines.join('\n')).toMatch(/progress kept in the room reserved for it/);
    expect((await readState(spool, 'hub', id))?.lastError).toBe('kept');
    rmSync(filler);
  } finally {
    await room.release();
    vi.useRealTimers();
  }
  // released: the timer is gone with the files
  expect(readdirSync(spool.tmpDir).filter((n) => n.endsWith('.run-reserve'))).toEqual([]);
});
