// proto9 (session 9): the receiver's ledger is pruned by age at the start of each session.
// The age was taken from the clock alone: a bag committed while the clock was behind (a
// board without an RTC, restored to its last shutdown time, syncing before NTP) carried a
// time weeks old, and the first session after NTP set the clock right pruned it — so the
// same jobs offered again after a lost acknowledgement were stored a second time (promise:
// nothing stored twice). Two real sessions over the in-process pair; the lost ACK is made
// by putting the sender's job file back into its queue, as a sender that never got the ACK
// still has it.

import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Ledger } from '../../../lib/session/ledger.js';
import { createPair } from '../../../lib/transport/pair.js';
import { enqueue, ids, makeSite, messages, session, tempDir } from './sites.js';

const DAY = 86_400_000;
const cleanups: (() => void)[] = [];
afterEach(() => {
  vi.useRealTimers();
  while (cleanups.length) cleanups.pop()!();
});

describe('the ledger after the clock jumped forward', () => {
  it('a job committed with the clock 30 days behind and offered again after NTP is not stored twice', async () => {
    const t = tempDir('p9-ledger');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const sent = await enqueue(hub, 'home', messages([600], 95));
    const [id] = [...sent.keys()];
    const keep = join(t.dir, 'kept');
    mkdirSync(keep);
    copyFileSync(hub.spool.path('out', 'home', id!), join(keep, id!));

    // the session while home's clock is 30 days behind (retention is 14 days)
    const real = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], now: real - 30 * DAY });
    const [a, b] = createPair();
    await Promise.all([session(hub, 'home', a), session(home, 'hub', b)]);
    expect(ids(home, 'in', 'hub')).toEqual([id]);
    // home's ACK never reached hub: its job is still queued there
    copyFileSync(join(keep, id!), hub.spool.path('out', 'home', id!));
    // delivered meanwhile at home (the runner), so in/ alone would not show a second copy
    const { rmSync } = await import('node:fs');
    rmSync(home.spool.path('in', 'hub', id!));

    // NTP sets the clock right; the next session offers the job again
    vi.useRealTimers();
    const [c, d] = createPair();
    const [, homeSide] = await Promise.all([session(hub, 'home', c), session(home, 'hub', d)]);
    // answered `have` (the same bag again) or counted a duplicate: never committed again
    expect(homeSide.received.jobs).toBe(0);
    expect(ids(home, 'in', 'hub')).toEqual([]);
    expect(ids(hub, 'out', 'home')).toEqual([]);
  });

  it('old entries are pruned once a newer one is there (retention counts from the newest entry, not only the clock)', async () => {
    const t = tempDir('p9-ledger-prune');
    cleanups.push(t.remove);
    mkdirSync(join(t.dir, 'tmp'));
    const path = join(t.dir, 'ledger');
    const now = Date.now();
    const A = 'a'.repeat(64);
    const B = 'b'.repeat(64);
    const l = await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, now);
    await l.record(A, ['0190000000001abcd'], now - 30 * DAY);
    // alone, the old entry stays (its bag may be the last one committed)
    expect((await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, now)).hasBag(A)).toBe(true);
    // a newer one only 10 days younger: both stay
    await l.record(B, ['0190000000002abcd'], now - 20 * DAY);
    expect((await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, now)).hasBag(A)).toBe(true);
    await l.record('c'.repeat(64), ['0190000000003abcd'], now);
    const again = await Ledger.open(path, join(t.dir, 'tmp'), 14 * DAY, now);
    expect(again.hasBag(A)).toBe(false);
    expect(again.hasBag(B)).toBe(false);
  });
});
