// The LMTP dedup ledger on a real spool: one append-only file per peer and day, a
// fixed-size filter in memory confirmed by the files, another lmtpd's appends seen,
// torn lines skipped, whole days removed by the retention, entries of the earlier
// one-file-per-entry format moved into day files, and the recovery after a crash.

import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dayName, SpoolLedger } from '../../../lib/lmtp/ledger.js';
import { SpoolJobStore } from '../../../lib/lmtp/spool-store.js';
import { newJobId } from '../../../lib/job/id.js';
import { Spool } from '../../../lib/spool/spool.js';

let dir: string;
let spool: Spool;
const opened: SpoolLedger[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-lmtp-ledger-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => {
  for (const l of opened.splice(0)) l.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(opts: Parameters<typeof SpoolLedger.open>[1] = {}): Promise<SpoolLedger> {
  const l = await SpoolLedger.open(spool, opts);
  opened.push(l);
  return l;
}

const digest = (s: string): string => createHash('sha256').update(s).digest('hex');
const DAY = 86_400_000;
const T0 = Date.parse('2026-11-20T12:00:00Z');

describe('SpoolLedger', () => {
  it('records and finds per peer, one line per entry in the peer\'s file of the day', async () => {
    const l = await open();
    const id = newJobId();
    expect(await l.find('hub', digest('a'))).toBeUndefined();
    await l.record('hub', digest('a'), id);
    expect(await l.find('hub', digest('a'))).toBe(id);
    expect(await l.find('mx2', digest('a'))).toBeUndefined();
    expect(await l.find('hub', digest('b'))).toBeUndefined();
    const day = dayName(Date.now());
    expect(readdirSync(spool.path('lmtp-ledger', 'hub'))).toEqual([day]);
    expect(readFileSync(spool.path('lmtp-ledger', 'hub', day), 'latin1')).toBe(`mailbag-lmtp-ledger 2\n${digest('a')} ${id}\n`);
    // nothing left in tmp/ (the day file was made there and linked)
    expect(readdirSync(spool.tmpDir)).toEqual([]);
  });

  it('finds what was recorded before it opened, and what another ledger on the spool appends meanwhile', async () => {
    const a = await open();
    const first = newJobId();
    await a.record('hub', digest('1'), first);
    const b = await open();
    expect(await b.find('hub', digest('1'))).toBe(first);
    // b looks up (and so reads the file's tail) before and after a appends
    expect(await b.find('hub', digest('2'))).toBeUndefined();
    const second = newJobId();
    await a.record('hub', digest('2'), second);
    expect(await b.find('hub', digest('2'))).toBe(second);
    const third = newJobId();
    await b.record('hub', digest('3'), third);
    expect(await a.find('hub', digest('3'))).toBe(third);
    const lines = readFileSync(spool.path('lmtp-ledger', 'hub', dayName(Date.now())), 'latin1').split('\n');
    expect(lines).toHaveLength(5);
  });

  it('sees a day file another ledger made after it opened, also for a peer it did not know', async () => {
    const a = await open();
    const b = await open();
    const id = newJobId();
    await b.record('new-peer', digest('x'), id);
    expect(await a.find('new-peer', digest('x'))).toBe(id);
  });

  it('confirms the filter\'s hits in the files: a small filter full of entries still answers only the truth', async () => {
    // 2^10 bits and 300 entries of 6 bits each: about a third of absent digests pass the filter
    const l = await open({ filterBits: 10 });
    const ids = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const id = newJobId();
      ids.set(digest(`m${i}`), id);
      await l.record('hub', digest(`m${i}`), id);
    }
    for (let i = 0; i < 50; i++) expect(await l.find('hub', digest(`absent${i}`))).toBeUndefined();
    expect(l.stats.falsePositives).toBeGreaterThan(5);
    for (const [d, id] of [...ids].slice(0, 50)) expect(await l.find('hub', d)).toBe(id);
    expect(l.stats.confirmed).toBe(50);
  });

  it('skips a line torn by a power cut and keeps the next entry on a line of its own', async () => {
    const l = await open();
    const kept = newJobId();
    await l.record('hub', digest('kept'), kept);
    l.close();
    const file = spool.path('lmtp-ledger', 'hub', dayName(Date.now()));
    // a power cut: the last entry half there, then zeros where the page was not written
    appendFileSync(file, `${digest('torn')} 019aa9b3c2e1\0\0\0\0`);
    const again = await open();
    expect(await again.find('hub', digest('kept'))).toBe(kept);
    expect(await again.find('hub', digest('torn'))).toBeUndefined();
    const next = newJobId();
    await again.record('hub', digest('next'), next);
    const fresh = await open();
    expect(await fresh.find('hub', digest('next'))).toBe(next);
    expect(readFileSync(file, 'latin1').endsWith(`\0\0\0\0\n${digest('next')} ${next}\n`)).toBe(true);
  });

  it('refuses a day file of another format version, naming it', async () => {
    mkdirSync(spool.path('lmtp-ledger', 'hub'), { recursive: true });
    writeFileSync(spool.path('lmtp-ledger', 'hub', '2026-11-20'), 'mailbag-lmtp-ledger 3\nwhatever\n');
    await expect(SpoolLedger.open(spool)).rejects.toThrow(/LMTP ledger format version 3 is not supported; this mailbag reads version 2 \(.*2026-11-20\)/);
  });

  it('removes whole day files once their last possible entry is older than the retention', async () => {
    let now = T0;
    const l = await open({ now: () => now });
    const old = newJobId(now);
    await l.record('hub', digest('old'), old);
    now = T0 + DAY;
    const young = newJobId(now);
    await l.record('hub', digest('young'), young);
    expect(readdirSync(spool.path('lmtp-ledger', 'hub')).sort()).toEqual(['2026-11-20', '2026-11-21']);
    // the file of 11-20 holds entries up to its midnight: kept until that is 2 days old
    expect(await l.prune(2 * DAY, Date.parse('2026-11-22T23:59:00Z'))).toBe(0);
    expect(await l.prune(2 * DAY, Date.parse('2026-11-23T00:01:00Z'))).toBe(1);
    expect(readdirSync(spool.path('lmtp-ledger', 'hub'))).toEqual(['2026-11-21']);
    expect(await l.find('hub', digest('old'))).toBeUndefined();
    expect(await l.find('hub', digest('young'))).toBe(young);
  });

  it('forgets a day another ledger on the spool pruned (lmtp.workers: the primary prunes first), so its entries leave this filter too', async () => {
    let now = T0;
    // a: the primary (it prunes); b: a worker that read the same day files
    const a = await open({ now: () => now });
    const b = await open({ now: () => now });
    const old = newJobId(now);
    await a.record('hub', digest('old'), old);
    expect(await b.find('hub', digest('old'))).toBe(old);
    now = Date.parse('2026-11-23T00:01:00Z');
    const young = newJobId(now);
    await b.record('hub', digest('young'), young);
    expect(await a.prune(2 * DAY)).toBe(1);
    expect(readdirSync(spool.path('lmtp-ledger', 'hub'))).toEqual(['2026-11-23']);
    // b removed nothing itself, but its filter is rebuilt from the files left: the old
    // digest is no longer a possible hit (no file read, no false positive counted)
    expect(await b.prune(2 * DAY)).toBe(0);
    const before = { ...b.stats };
    expect(await b.find('hub', digest('old'))).toBeUndefined();
    expect(b.stats.falsePositives).toBe(before.falsePositives);
    expect(await b.find('hub', digest('young'))).toBe(young);
    expect(b.stats.confirmed).toBe(before.confirmed + 1);
    // and it keeps appending to its day file as before
    const later = newJobId(now);
    await b.record('hub', digest('later'), later);
    expect(await a.find('hub', digest('later'))).toBe(later);
  });

  it('moves entries of the earlier format (a file per entry) into the day file of their time', async () => {
    const hub = spool.path('lmtp-ledger', 'hub');
    mkdirSync(hub, { recursive: true });
    const ids = [newJobId(T0), newJobId(T0 + DAY)];
    writeFileSync(join(hub, digest('e1')), `mailbag-lmtp-ledger 1\n${ids[0]}\n`);
    writeFileSync(join(hub, digest('e2')), `mailbag-lmtp-ledger 1\n${ids[1]}\n`);
    utimesSync(join(hub, digest('e1')), new Date(T0), new Date(T0));
    utimesSync(join(hub, digest('e2')), new Date(T0 + DAY), new Date(T0 + DAY));
    const l = await open();
    expect(await l.find('hub', digest('e1'))).toBe(ids[0]);
    expect(await l.find('hub', digest('e2'))).toBe(ids[1]);
    expect(readdirSync(hub).sort()).toEqual(['2026-11-20', '2026-11-21']);
    expect(readFileSync(join(hub, '2026-11-20'), 'latin1')).toBe(`mailbag-lmtp-ledger 2\n${digest('e1')} ${ids[0]}\n`);
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    // the retention then treats them by their old time
    expect(await l.prune(DAY, Date.parse('2026-11-22T00:30:00Z'))).toBe(1);
    expect(await l.find('hub', digest('e1'))).toBeUndefined();
  });
});

describe('SpoolLedger.recover', () => {
  it('records jobs committed just before a crash, so the MTA retry is recognised', async () => {
    const store = new SpoolJobStore(spool, 'home');
    const ledger = await open();
    const payload = Buffer.from('MAIL FROM:<>\nRCPT TO:<a@x.test>\nDATA\nhi\n.\n');
    const d = await store.begin({ to: 'hub', command: 'rsmtp', args: [], sender: '', recipients: ['a@x.test'] }, { maxSize: 1000 });
    await d.write(payload);
    const id = await d.commit();
    // crash here: no ledger entry
    expect(await ledger.find('hub', digest(payload.toString()))).toBeUndefined();
    expect(await ledger.recover('home')).toBe(1);
    expect(await ledger.find('hub', digest(payload.toString()))).toBe(id);
    expect(await ledger.recover('home')).toBe(0);
    // a ledger opened afterwards knows it too
    expect(await (await open()).recover('home')).toBe(0);
    // another site's jobs are not ours
    expect(await (await open()).recover('elsewhere')).toBe(0);
    expect(existsSync(spool.path('lmtp-ledger', 'hub', dayName(Date.now())))).toBe(true);
  });

  // A big message on a slow link: its job id is made when its DATA begins, and the other
  // connections' transactions go on meanwhile. Killed after its commit, before its entry:
  // the recovery used to look only at jobs made since ten minutes before the newest entry,
  // missed this one, and the MTA's retry was stored twice.
  it('records a job whose DATA began long before the newest entry (a long DATA phase cut after the commit)', async () => {
    let clock = T0;
    const store = new SpoolJobStore(spool, 'home', undefined, () => clock);
    const ledger = await open({ now: () => clock });
    const h = { to: 'hub', command: 'rsmtp' as const, args: [], sender: '', recipients: ['a@x.test'] };
    const slow = await store.begin(h, { maxSize: 10_000 });
    const big = Buffer.from(`MAIL FROM:<>\nRCPT TO:<a@x.test>\nDATA\n${'slow line\n'.repeat(500)}.\n`);
    slow.write(big.subarray(0, 100));
    // 40 minutes of other transactions, each committed and recorded
    for (let m = 1; m <= 40; m++) {
      clock = T0 + m * 60_000;
      const other = Buffer.from(`MAIL FROM:<>\nRCPT TO:<b@x.test>\nDATA\nmessage ${m}\n.\n`);
      const d = await store.begin({ ...h, recipients: ['b@x.test'] }, { maxSize: 1000 });
      d.write(other);
      await ledger.record('hub', digest(other.toString()), await d.commit());
    }
    slow.write(big.subarray(100));
    const id = await slow.commit();
    // killed here: no entry for it
    clock += 5_000;
    const after = await open({ now: () => clock });
    expect(await after.find('hub', digest(big.toString()))).toBeUndefined();
    expect(await after.recover('home', 14 * DAY)).toBe(1);
    expect(await after.find('hub', digest(big.toString()))).toBe(id);
    // the 40 others had their entries: none recorded again
    expect(readFileSync(spool.path('lmtp-ledger', 'hub', dayName(clock)), 'latin1').split('\n').filter(Boolean)).toHaveLength(1 + 41);
  });

  it('looks at the jobs made within the retention: days-old jobs without an entry too, not older ones', async () => {
    let clock = T0;
    const store = new SpoolJobStore(spool, 'home', undefined, () => clock);
    const ledger = await open({ now: () => clock });
    const h = { to: 'hub', command: 'rsmtp' as const, args: [], sender: '', recipients: ['a@x.test'] };
    const job = async (text: string, entry: boolean): Promise<string> => {
      const d = await store.begin(h, { maxSize: 1000 });
      d.write(Buffer.from(text));
      const id = await d.commit();
      if (entry) await ledger.record('hub', digest(text), id);
      return id;
    };
    await job('older than the retention\n', false);
    clock = T0 + 2 * DAY;
    await job('with an entry, two days later\n', true);
    const lost = await job('no entry, two days later\n', false);
    clock = T0 + 5 * DAY;
    await job('with an entry, five days later\n', true);
    // a front door's job (rmail) and another site's never have an entry: read, not recorded
    const header = { from: 'home', to: 'hub', created: new Date(clock).toISOString(), command: 'rmail', args: ['a@x.test'], sender: '', recipients: ['a@x.test'] };
    await spool.writeJob('out', 'hub', { ...header, id: newJobId(clock) }, Buffer.from('rmail job\n'));
    await spool.writeJob('out', 'hub', { ...header, id: newJobId(clock), from: 'elsewhere', command: 'rsmtp', args: [] }, Buffer.from('not ours\n'));
    clock = T0 + 6 * DAY;
    const after = await open({ now: () => clock });
    // retention 5 days: the jobs of day 0 are past it (their entries would be pruned by now)
    expect(await after.recover('home', 5 * DAY)).toBe(1);
    expect(await after.find('hub', digest('rmail job\n'))).toBeUndefined();
    expect(await after.find('hub', digest('not ours\n'))).toBeUndefined();
    expect(await after.find('hub', digest('no entry, two days later\n'))).toBe(lost);
    expect(await after.find('hub', digest('older than the retention\n'))).toBeUndefined();
    expect(await after.recover('home', 5 * DAY)).toBe(0);
  });
});

describe('SpoolLedger.recover while a session sends', () => {
  // A session sends and removes jobs from out/ while lmtpd starts. readJob reads a job's
  // header and closes it; its payload is opened again by path when it is hashed. A job
  // removed in between made the payload's stream fail with ENOENT, which ended the
  // recovery and with it lmtpd's start (exit 75): it must be skipped like a job gone
  // before its header was read, and the other jobs still recorded.
  it('skips a job removed between its header and its payload, and records the others', async () => {
    const store = new SpoolJobStore(spool, 'home');
    const h = { to: 'hub', command: 'rsmtp' as const, args: [], sender: '', recipients: ['a@x.test'] };
    const job = async (text: string): Promise<string> => {
      const d = await store.begin(h, { maxSize: 1000 });
      d.write(Buffer.from(text));
      return d.commit();
    };
    const gone = await job('sent meanwhile\n');
    const kept = await job('still here\n');
    const ledger = await open();
    const readJob = spool.readJob.bind(spool);
    spool.readJob = async (ref) => {
      const j = await readJob(ref);
      if (ref.id === gone) rmSync(ref.path); // the session's removal, after the header was read
      return j;
    };
    expect(await ledger.recover('home')).toBe(1);
    expect(await ledger.find('hub', digest('still here\n'))).toBe(kept);
    expect(await ledger.find('hub', digest('sent meanwhile\n'))).toBeUndefined();
  });
});
