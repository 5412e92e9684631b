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
