// review9b: dbdddfa counts the ledger's retention from its newest entry when the clock is
// ahead of it, so a bag committed with the clock behind (before NTP) is not pruned at the
// next open. That holds while that bag is the newest entry (a clock restored to the last
// shutdown time). A board that boots far behind (1970, its build date: no RTC, no saved
// clock) commits a bag whose time is below the entries committed before the reboot: the
// newest is one of those, and the first open after NTP prunes the bag just committed —
// the same bag offered again after a lost ACK is then stored twice. Lines are in commit
// order: a line below an earlier one's time is at least as young as that one.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/session/ledger.js';
import { tempDir } from '../unit/session/sites.js';

const DAY = 86_400_000;
const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('a bag committed with the clock far behind the entries before it', () => {
  it('is not pruned by the first open after the clock is set right', async () => {
    const t = tempDir('r9b-ledger-behind');
    cleanups.push(t.remove);
    mkdirSync(join(t.dir, 'tmp'));
    const path = join(t.dir, 'ledger');
    const real = Date.UTC(2026, 10, 23);
    const l = await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, real - 3 * DAY);
    // committed before the reboot, by a right clock, three days ago
    await l.record('a'.repeat(64), ['0190000000001abcd'], real - 3 * DAY);
    // after the reboot, before NTP: the clock says 1970
    const booted = 5 * DAY;
    const b = await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, booted);
    await b.record('b'.repeat(64), ['0190000000002abcd'], booted);
    // NTP; the next session's open, minutes later: bag b is the one just committed
    const after = await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, real);
    expect(after.hasBag('b'.repeat(64))).toBe(true);
    expect(after.hasJob('0190000000002abcd')).toBe(true);
  });

  it('a line written while the clock was ahead does not hold back the pruning of those after it', async () => {
    const t = tempDir('r9b-ledger-ahead');
    cleanups.push(t.remove);
    mkdirSync(join(t.dir, 'tmp'));
    const path = join(t.dir, 'ledger');
    const real = Date.UTC(2026, 10, 23);
    const l = await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, real - 60 * DAY);
    // one commit with the clock set to 2099 by mistake, then set right
    await l.record('f'.repeat(64), ['0190000000001abcd'], Date.UTC(2099, 0, 1));
    await l.record('a'.repeat(64), ['0190000000002abcd'], real - 60 * DAY);
    await l.record('c'.repeat(64), ['0190000000003abcd'], real);
    const after = await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, real);
    expect(after.hasBag('a'.repeat(64))).toBe(false);
    expect(after.hasBag('c'.repeat(64))).toBe(true);
  });
});
