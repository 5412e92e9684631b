// Review of the LMTP ledger shared by lmtpd's workers (lmtp.workers above 1): a worker
// that made no lookup for more than a day (a quiet spell: every connection went to the
// other worker, or it was idle) must still find what the other worker recorded on the
// day it missed, when the MTA's retry reaches it after 01:00 on a later day. Before, it
// read only today's file (and yesterday's in the first hour) and the days it had already
// tailed, so a day file made meanwhile was never read: the retry was stored twice.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLedger } from '../../../lib/lmtp/ledger.js';
import { newJobId } from '../../../lib/job/id.js';
import { Spool } from '../../../lib/spool/spool.js';

let dir: string;
let spool: Spool;
const opened: SpoolLedger[] = [];
let now = 0;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lmtp-ledger-review4-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => {
  for (const l of opened.splice(0)) l.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(): Promise<SpoolLedger> {
  const l = await SpoolLedger.open(spool, { now: () => now });
  opened.push(l);
  return l;
}

const digest = (s: string): string => createHash('sha256').update(s).digest('hex');
const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-20T12:00:00Z');

describe('SpoolLedger: a worker idle for a whole UTC day (review)', () => {
  it('finds an entry the other worker recorded on a day it made no lookup at all', async () => {
    now = T0;
    const a = await open();
    const b = await open();
    // both look hub up on the 20th (b tails the 20th's file)
    await a.record('hub', digest('first'), newJobId(now));
    expect(await b.find('hub', digest('first'))).toBeDefined();
    // the 21st: only a takes mail (b idle); its reply is lost
    now = T0 + 24 * HOUR;
    const id = newJobId(now);
    await a.record('hub', digest('lost reply'), id);
    // the MTA's retry reaches b at 02:00 on the 22nd, its first lookup since the 20th
    now = T0 + 38 * HOUR;
    expect(await b.find('hub', digest('lost reply'))).toBe(id);
  });

  it('the same across several missed days, and for entries a recorded after b\'s last lookup that day', async () => {
    now = T0;
    const a = await open();
    const b = await open();
    expect(await b.find('hub', digest('none'))).toBeUndefined();
    const ids: string[] = [];
    for (let d = 1; d <= 3; d++) {
      now = T0 + d * 24 * HOUR;
      ids.push(newJobId(now));
      await a.record('hub', digest(`day ${d}`), ids[d - 1]!);
    }
    now = T0 + 4 * 24 * HOUR;
    for (let d = 1; d <= 3; d++) expect(await b.find('hub', digest(`day ${d}`))).toBe(ids[d - 1]);
  });
});
