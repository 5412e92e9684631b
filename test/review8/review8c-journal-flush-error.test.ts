// review8c: lmtpd's journal (lib/lmtp/journal.ts) when one of its fdatasyncs fails (EIO).
// fdatasync is made to fail once, where each test says; everything else is the real
// journal on a real spool. Two ways a failed flush costs answered mail:
//  1. a failed *reset* flush: the new header (generation g+1) was written into the page
//     cache, but the journal goes on appending records of generation g behind it; a
//     crash (SIGKILL: the page cache survives) then replays nothing of what was answered
//     after it;
//  2. a failed *append* flush: the batch is answered 451 but the journal goes on
//     appending later batches after it, and answers them 250 once their own flush
//     returns. On Linux a failed writeback leaves the pages clean but the disk with the
//     old bytes, and the error is reported once: the next fdatasync succeeds. After a
//     power cut the failed batch's region holds what it held before (zeros in a fresh
//     journal), the replay stops there, and the later, answered, records are never read.
// Each test fails as the journal is at 409c45a..d4b0764 and passes with the fix in
// /work/brief/req-review8c.md (no records appended in a generation after a failed
// flush: commits go straight into out/ until a reset, header rewritten, has been flushed).

import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LmtpJournal as LmtpJournalT } from '../../lib/lmtp/journal.js';
import type { SpoolJobStore as SpoolJobStoreT } from '../../lib/lmtp/spool-store.js';
import type { Spool as SpoolT } from '../../lib/spool/spool.js';

const ctl = vi.hoisted(() => ({ failNext: 0, failed: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void => {
    if (ctl.failNext > 0) {
      ctl.failNext--;
      ctl.failed++;
      const err = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
      setImmediate(() => cb(err));
      return;
    }
    fs.fdatasync(fd, cb);
  };
  // lmtpd's journal flushes on the event loop while fdatasync returns at once (SyncGate,
  // session 10): the same failure, thrown
  const fdatasyncSync = (fd: number): void => {
    if (ctl.failNext > 0) {
      ctl.failNext--;
      ctl.failed++;
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
    }
    fs.fdatasyncSync(fd);
  };
  return { ...fs, default: { ...fs, fdatasync, fdatasyncSync }, fdatasync, fdatasyncSync };
});

const { JOURNAL_DIR, LmtpJournal, replayJournals } = await import('../../lib/lmtp/journal.js');
const { SpoolJobStore } = await import('../../lib/lmtp/spool-store.js');
const { GroupCommit } = await import('../../lib/spool/commit.js');
const { Spool } = await import('../../lib/spool/spool.js');

let dir: string;
let spool: SpoolT;

beforeEach(async () => {
  ctl.failNext = 0;
  ctl.failed = 0;
  dir = mkdtempSync(join(tmpdir(), 'mailbag-review8c-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const header = { to: 'hub', command: 'rsmtp' as const, args: [], sender: 's@x.test', recipients: ['a@x.test'] };

async function job(store: SpoolJobStoreT, body: string): Promise<string> {
  const d = await store.begin(header, { maxSize: 1024 * 1024 });
  d.write(Buffer.from(body));
  return d.commit();
}

function outJobs(): string[] {
  try {
    return readdirSync(join(spool.root, 'out', 'hub')).sort();
  } catch {
    return [];
  }
}

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** as MAILBAG_FAULT=journal-hold and abandon() do: answered jobs are no longer written into out/ (the crash "after the 250s") */
function holdFromNow(journal: LmtpJournalT): void {
  (journal as unknown as { hold: boolean }).hold = true;
}

describe('review8c: the LMTP journal after a failed fdatasync', () => {
  it('a reset whose flush fails: a job answered afterwards is replayed after a SIGKILL', async () => {
    const committer = new GroupCommit();
    const { journal } = await LmtpJournal.open(spool, { fallback: committer });
    const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
    const a = await job(store, 'first, written out\n');
    await until('the first job in out/', () => journal!.stats.materialized === 1);
    // the idle reset (200 ms after the write-out) meets an I/O error on its flush, and so
    // does its retry before the next batch (a bad sector under the header: each rewrite of
    // it fails to reach the disk, while the records' pages elsewhere are written fine)
    ctl.failNext = 2;
    await until('the reset tried', () => ctl.failed === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(journal!.stats.resets).toBe(0);
    // then: a job answered 250, and lmtpd killed before it is written into out/
    holdFromNow(journal!);
    const b = await job(store, 'second, answered after the failed reset\n');
    expect(ctl.failed).toBe(2);
    expect(outJobs()).toEqual([a]);
    await journal!.abandon();
    // the next start's replay must write it: the MTA was told 250 and let go of it
    await replayJournals(spool);
    expect(outJobs()).toEqual([a, b].sort());
  });

  it('an append whose flush fails (451): a later batch answered 250 is replayed after a power cut', async () => {
    const committer = new GroupCommit();
    const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold: true });
    const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
    // a batch answered, held in the journal (lmtpd is busy: no reset is due)
    const a = await job(store, 'first: answered 250\n');
    ctl.failNext = 1;
    await expect(job(store, 'second: its flush fails, answered 451\n')).rejects.toThrow(/EIO|i\/o error/i);
    const c = await job(store, 'third: answered 250\n');
    expect(journal!.stats.resets).toBe(0);
    await journal!.abandon();
    // the power cut: the failed writeback's pages never reached the disk (the journal's
    // bytes there are what they were before: zeros); the third batch's flush succeeded.
    // Then the third job must be in out/ after the replay, wherever it was made durable
    const path = join(spool.root, JOURNAL_DIR, readdirSync(join(spool.root, JOURNAL_DIR))[0]!);
    const bytes = readFileSync(path);
    // the records: `MBJR`, generation, path length, data length, CRC, then path and data
    const second = bytes.indexOf(Buffer.from('MBJR', 'latin1'), 4096 + 1);
    expect(bytes.indexOf(Buffer.from('MBJR', 'latin1'))).toBe(4096);
    expect(second).toBeGreaterThan(4096);
    const len = 20 + bytes.readUInt32LE(second + 8) + bytes.readUInt32LE(second + 12);
    expect(bytes.toString('latin1', second, second + len)).toContain('second: its flush fails');
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(len), 0, len, second);
    closeSync(fd);
    await replayJournals(spool);
    expect(outJobs()).toEqual([a, c].sort());
  });
});
