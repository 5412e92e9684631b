// Review of the LMTP ledger shared by lmtpd's workers (lmtp.workers above 1): each worker
// has its own SpoolLedger on the same files and sees the others' entries by reading the
// tails of the day files. An entry another worker appended late in a day must still be
// found after that day ended (a retry that comes the next morning, after 01:00), and the
// entries of a peer this worker met only after its start must be found on later days too.

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
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lmtp-ledger-review2-'));
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

describe('SpoolLedger with two workers on one spool (review)', () => {
  it('finds an entry the other worker appended late in a day when the retry comes after 01:00 the next day', async () => {
    now = T0;
    const a = await open();
    const b = await open();
    // b has read today's file for hub (a lookup), a then records at 23:00
    expect(await b.find('hub', digest('other'))).toBeUndefined();
    now = T0 + 11 * HOUR;
    const id = newJobId(now);
    await a.record('hub', digest('late'), id);
    // the retry reaches b at 02:00 the next day, its first lookup since
    now = T0 + 14 * HOUR;
    expect(await b.find('hub', digest('late'))).toBe(id);
  });

  it('finds the entries of a peer it met only after its start, recorded by the other worker on an earlier day', async () => {
    now = T0;
    const a = await open();
    const b = await open();
    const id = newJobId(now);
    await a.record('new-peer', digest('m'), id);
    now = T0 + 24 * HOUR;
    expect(await b.find('new-peer', digest('m'))).toBe(id);
  });

  it('the same when it looked the peer up before the other made its first file that day', async () => {
    now = T0;
    const a = await open();
    const b = await open();
    expect(await b.find('new-peer', digest('x'))).toBeUndefined();
    now = T0 + HOUR;
    const id = newJobId(now);
    await a.record('new-peer', digest('m'), id);
    now = T0 + 24 * HOUR;
    expect(await b.find('new-peer', digest('m'))).toBe(id);
  });
});

// Review 4: a worker of several
// that made no lookup for more than a day (a quiet spell: every connection went to the
// other worker, or it was idle) must still find what the other worker recorded on the
// day it missed, when the MTA's retry reaches it after 01:00 on a later day. Before, it
// read only today's file (and yesterday's in the first hour) and the days it had already
// tailed, so a day file made meanwhile was never read: the retry was stored twice.

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
