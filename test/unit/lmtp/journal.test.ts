// lmtpd's write-ahead journal (lib/lmtp/journal.ts) on a real spool: a job is answered
// once its batch is flushed to the journal, then written into out/PEER; a journal left
// by a crash is replayed (each job once, none already in out/ again), a torn record and
// what follows it are dropped, a reset journal replays nothing; a job larger than the
// journal's limit is staged in tmp/ and committed by GroupCommit as before.

import { closeSync, openSync, readdirSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOURNAL_DIR, JOURNAL_MAX_HELD, JOURNAL_MAX_JOB, JOURNAL_SIZE, LmtpJournal, replayJournals } from '../../../lib/lmtp/journal.js';
import { SpoolJobStore } from '../../../lib/lmtp/spool-store.js';
import { GroupCommit } from '../../../lib/spool/commit.js';
import { Spool } from '../../../lib/spool/spool.js';
import { journalSite } from './journal-site.js';

let dir: string;
let spool: Spool;
const { open, job, outJobs } = journalSite('mailbag-lmtp-journal-', (s, d) => {
  spool = s;
  dir = d;
});

const header = (to = 'hub') => ({ to, command: 'rsmtp' as const, args: [], sender: 's@x.test', recipients: ['a@x.test'] });


function payloadOf(id: string, peer = 'hub'): string {
  // `mailbag-job 1`, the header line, then the payload
  const text = readFileSync(join(spool.root, 'out', peer, id), 'utf8');
  return text.slice(text.indexOf('\n', text.indexOf('\n') + 1) + 1);
}

describe('LmtpJournal', () => {
  it('answers once flushed, then writes the job into out/PEER; close resets the journal', async () => {
    const { journal, committer } = await open();
    const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
    const ids = await Promise.all([job(store, 'one\n'), job(store, 'two\n'), job(store, 'three\n', 'mx2')]);
    await journal.close();
    expect(outJobs()).toEqual([ids[0], ids[1]].sort());
    expect(outJobs('mx2')).toEqual([ids[2]]);
    expect(payloadOf(ids[1]!)).toBe('two\n');
    expect(journal.stats.files).toBe(3);
    expect(journal.stats.materialized).toBe(3);
    expect(journal.stats.resets).toBeGreaterThanOrEqual(1);
    expect(committer.stats.files).toBe(0);
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    // nothing to replay after an orderly stop
    expect(await replayJournals(spool)).toBe(0);
    expect(outJobs()).toHaveLength(2);
  });

  it('a journal left by a crash is replayed: every answered job once, none twice', async () => {
    const { journal, store } = await open(true);
    const a = await job(store, 'first\n');
    const b = await job(store, Buffer.alloc(50_000, 'b'));
    const c = await job(store, 'third\n', 'mx2');
    // answered, but nothing in out/ yet (held): the crash comes now
    expect(outJobs()).toEqual([]);
    await journal.abandon();
    expect(await replayJournals(spool)).toBe(3);
    expect(outJobs()).toEqual([a, b].sort());
    expect(outJobs('mx2')).toEqual([c]);
    expect(payloadOf(b)).toBe('b'.repeat(50_000));
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    // the replay reset it: a second one writes nothing
    expect(await replayJournals(spool)).toBe(0);
    expect(outJobs()).toHaveLength(2);
  });

  it('a job already in out/ (written before the crash) is not written again', async () => {
    const { journal, store } = await open(true);
    const a = await job(store, 'first\n');
    const b = await job(store, 'second\n');
    await journal.abandon();
    // the first job reached out/ before the crash (and may have been sent since: the
    // replay writes only what is missing)
    const fd = openSync(join(spool.root, 'out', 'hub', a), 'wx');
    writeSync(fd, 'already here');
    closeSync(fd);
    expect(await replayJournals(spool)).toBe(1);
    expect(outJobs()).toEqual([a, b].sort());
    expect(readFileSync(join(spool.root, 'out', 'hub', a), 'utf8')).toBe('already here');
  });

  it('a torn record at the tail, and anything after it, is dropped', async () => {
    const { journal, store } = await open(true);
    const a = await job(store, 'kept\n');
    await job(store, 'torn\n');
    await journal.abandon();
    // the second record's last byte never reached the disk: its CRC fails
    const [name] = readdirSync(join(spool.root, JOURNAL_DIR));
    const path = join(spool.root, JOURNAL_DIR, name!);
    const bytes = readFileSync(path);
    const at = bytes.lastIndexOf(Buffer.from('torn\n'));
    expect(at).toBeGreaterThan(0);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([0]), 0, 1, at + 4);
    closeSync(fd);
    expect(await replayJournals(spool)).toBe(1);
    expect(outJobs()).toEqual([a]);
    expect(payloadOf(a)).toBe('kept\n');
  });

  it('records of an earlier generation (a reset journal reused) are never replayed', async () => {
    const first = await open();
    await job(first.store, 'x'.repeat(3000));
    await job(first.store, 'y'.repeat(3000));
    await first.journal.close();
    expect(outJobs()).toHaveLength(2);
    // the next lmtpd takes the same file; its one record is shorter than the old ones
    const second = await open(true);
    const c = await job(second.store, 'z\n');
    await second.journal.abandon();
    expect(readdirSync(join(spool.root, JOURNAL_DIR))).toHaveLength(1);
    expect(await replayJournals(spool)).toBe(1);
    expect(outJobs()).toHaveLength(3);
    expect(outJobs()).toContain(c);
  });

  it('a journal of another size (an earlier mailbag\'s) is replayed, then made again at the size of this one', async () => {
    const { journal, store } = await open(true);
    const a = await job(store, 'in a short journal\n');
    await journal.abandon();
    const path = join(spool.root, JOURNAL_DIR, '1');
    truncateSync(path, JOURNAL_SIZE / 4);
    const { journal: next, replayed } = await LmtpJournal.open(spool, { fallback: new GroupCommit() });
    expect(replayed).toBe(1);
    expect(outJobs()).toEqual([a]);
    expect(statSync(path).size).toBe(JOURNAL_SIZE);
    await next!.close();
  });

  it('open takes the first free journal and leaves the others to replayJournals (a sibling worker starting meanwhile finds them unlocked)', async () => {
    const first = await open();
    const second = await open(true);
    await first.journal.close();
    await job(second.store, 'left in journal 2\n');
    await second.journal.abandon();
    // a worker's start: takes journal 1; journal 2 is neither locked nor replayed by it
    const { journal, replayed } = await LmtpJournal.open(spool, { fallback: new GroupCommit() });
    expect(replayed).toBe(0);
    expect(outJobs()).toEqual([]);
    expect(readdirSync(join(spool.root, JOURNAL_DIR)).sort()).toEqual(['1', '2']);
    // lmtpd's start replays it (before any worker listens)
    expect(await replayJournals(spool)).toBe(1);
    await journal!.close();
  });

  it('a journal held by a running lmtpd is not replayed by another process', async () => {
    const { journal, store } = await open(true);
    await job(store, 'held\n');
    // this process holds its lock: the replay (any other mailbag) leaves it alone
    expect(await replayJournals(spool)).toBe(0);
    expect(outJobs()).toEqual([]);
    // a second lmtpd on the spool takes a journal of its own
    const other = await open();
    expect(readdirSync(join(spool.root, JOURNAL_DIR)).sort()).toEqual(['1', '2']);
    await other.journal.close();
    await journal.abandon();
    expect(await replayJournals(spool)).toBe(1);
  });

  it(`a job larger than ${JOURNAL_MAX_JOB} bytes is staged in tmp/ and committed by GroupCommit (not held in memory)`, async () => {
    const { journal, committer, store } = await open();
    const d = await store.begin(header(), { maxSize: 64 * 1024 * 1024 });
    const piece = Buffer.alloc(64 * 1024, 'L');
    d.write(piece);
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    d.write(piece);
    d.write(piece);
    // past the limit: a tmp file from here on
    expect(readdirSync(spool.tmpDir)).toHaveLength(1);
    const id = await d.commit();
    expect(outJobs()).toEqual([id]);
    expect(payloadOf(id)).toBe('L'.repeat(3 * 64 * 1024));
    expect(committer.stats.files).toBe(1);
    expect(journal.stats.files).toBe(0);
    await journal.close();
    expect(readdirSync(spool.tmpDir)).toEqual([]);
  });

  it(`answered jobs not yet in out/ are held in memory up to ${JOURNAL_MAX_HELD} bytes: beyond, a commit waits for the write-out`, async () => {
    // held: nothing is written out, so what is answered stays in memory
    const { journal, store } = await open(true);
    const body = Buffer.alloc(120 * 1024, 'm');
    let answered = 0;
    for (let n = 0; n < 200; n++) {
      const r = await Promise.race([job(store, body).then(() => 'answered'), new Promise((w) => setTimeout(() => w('waiting'), 1000))]);
      if (r === 'waiting') break;
      answered++;
    }
    expect(answered).toBeLessThan(200);
    expect(answered * body.length).toBeGreaterThan(JOURNAL_MAX_HELD - 2 * body.length);
    expect(answered * body.length).toBeLessThanOrEqual(JOURNAL_MAX_HELD + body.length);
    await journal.abandon();
  });

  it('close() past its grace writes nothing more through the journal\'s descriptor (its number may be another file\'s by then): the job queued meanwhile is refused, not answered', async () => {
    const { journal } = await open();
    await spool.ensureDir('out', 'hub');
    const staged = journal.stage(join(spool.root, 'out', 'hub', '01a2060000000000000000aa'), { tmpDir: spool.tmpDir, noReplace: true, label: 'job' });
    staged.write(Buffer.from('queued as the grace ends\n'));
    // queued: the committer takes it on the next turn of the event loop; close(0) lets go of the journal first
    const committed = staged.commit().then(() => 'answered', (err: Error) => `refused: ${err.message}`);
    const closing = journal.close(0);
    // files opened now take the lowest free descriptors: the journal's number among them, if close() freed it
    const others = Array.from({ length: 64 }, (_, n) => join(dir, `another-file-${n}`));
    const fds = others.map((o) => openSync(o, 'w'));
    try {
      expect(await committed).toMatch(/^refused: .*closed/);
      await closing;
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    for (const o of others) expect(statSync(o).size, o).toBe(0);
    expect(outJobs()).toEqual([]);
  });

  it('a journal whose header is damaged is said loudly, and the records behind it are replayed, once', async () => {
    const { journal, store } = await open(true);
    const a = await job(store, 'first\n');
    const b = await job(store, 'second\n', 'mx2');
    await journal.abandon();
    const path = join(spool.root, JOURNAL_DIR, '1');
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('garbage'), 0, 7, 0);
    closeSync(fd);
    const lines: string[] = [];
    expect(await replayJournals(spool, (l) => lines.push(l))).toBe(2);
    expect(lines.join('\n')).toMatch(/LMTP journal .* has a damaged header: replaying the records of generation \d+/);
    expect(outJobs()).toEqual([a]);
    expect(outJobs('mx2')).toEqual([b]);
    // the header is whole again, above every record's generation: the old records are
    // never read as a new generation's (a shorter one written over them)
    const next = await open(true);
    const c = await job(next.store, 'z');
    await next.journal.abandon();
    expect(await replayJournals(spool)).toBe(1);
    expect(outJobs()).toEqual([a, c].sort());
    expect(outJobs('mx2')).toEqual([b]);
  });

  it('a damaged header with no whole record behind it: said, nothing replayed, the journal usable again', async () => {
    const { journal } = await open(true);
    await journal.abandon();
    const path = join(spool.root, JOURNAL_DIR, '1');
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(32), 0, 32, 0);
    closeSync(fd);
    const lines: string[] = [];
    expect(await replayJournals(spool, (l) => lines.push(l))).toBe(0);
    // opened and abandoned: the magic at 4096 cleared by open's reset, nothing appended since
    expect(lines.join('\n')).toMatch(/damaged header; its records had all been written into out\/ \(retired\) and none was added since: nothing to replay, nothing lost/);
    const next = await open(true);
    const c = await job(next.store, 'after\n');
    await next.journal.abandon();
    expect(await replayJournals(spool)).toBe(1);
    expect(outJobs()).toEqual([c]);
  });

  it('past maxSize the write fails and nothing is left; an aborted job leaves nothing', async () => {
    const { journal, store } = await open();
    const d = await store.begin(header(), { maxSize: 10 });
    d.write(Buffer.from('0123456789'));
    expect(() => d.write(Buffer.from('x'))).toThrow(/larger than the limit/);
    const e = await store.begin(header(), { maxSize: 1000 });
    e.write(Buffer.from('partial'));
    await e.abort();
    await journal.close();
    expect(outJobs()).toEqual([]);
    expect(readdirSync(spool.tmpDir)).toEqual([]);
    expect(journal.stats.files).toBe(0);
  });
});
