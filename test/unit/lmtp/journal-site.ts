// A spool for the LMTP journal's tests (journal, journal-key, review9c's damaged header):
// a fresh one before each test, removed after; the journal opened with its store, a job
// written through it, the jobs in out/PEER, the journal's file.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { JOURNAL_DIR, LmtpJournal } from '../../../lib/lmtp/journal.js';
import { SpoolJobStore } from '../../../lib/lmtp/spool-store.js';
import { GroupCommit } from '../../../lib/spool/commit.js';
import { Spool } from '../../../lib/spool/spool.js';

export interface JournalSite {
  /** lmtpd's journal on the test's spool (`hold`: never written out), with its store */
  open(hold?: boolean): Promise<{ journal: LmtpJournal; committer: GroupCommit; store: SpoolJobStore }>;
  /** one job to `to` through `store`, its bytes written in pieces as a socket delivers them; its id */
  job(store: SpoolJobStore, body: string | Buffer, to?: string): Promise<string>;
  /** the job files in out/PEER, sorted */
  outJobs(peer?: string): string[];
  /** the path of journal 1 */
  journalPath(): string;
}

/** Registers the test file's hooks; `made` gets each test's spool and its temp dir. */
export function journalSite(prefix: string, made: (spool: Spool, dir: string) => void): JournalSite {
  let dir: string | undefined;
  let spool: Spool;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    spool = await Spool.open(join(dir, 'spool'), { create: true });
    made(spool, dir);
  });
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return {
    async open(hold = false) {
      const committer = new GroupCommit();
      const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold });
      expect(journal).toBeDefined();
      return { journal: journal!, committer, store: new SpoolJobStore(spool, 'home', committer, Date.now, journal) };
    },
    async job(store, body, to = 'hub') {
      const d = await store.begin({ to, command: 'rsmtp', args: [], sender: 's@x.test', recipients: ['a@x.test'] }, { maxSize: 64 * 1024 * 1024 });
      const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
      for (let off = 0; off < b.length; off += 7000) d.write(b.subarray(off, off + 7000));
      return d.commit();
    },
    outJobs(peer = 'hub') {
      try {
        return readdirSync(join(spool.root, 'out', peer)).sort();
      } catch {
        return [];
      }
    },
    journalPath: () => join(spool.root, JOURNAL_DIR, '1'),
  };
}
