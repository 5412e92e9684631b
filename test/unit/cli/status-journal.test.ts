// mailbag status and lmtpd's journal (docs/spool.md "The LMTP journal", L8): jobs lmtpd
// answered 250 and left only in its journal — an lmtpd killed before it wrote them into
// out/PEER and not started again — count in `out`, named apart, so they are not hidden;
// once written into out/ they count once. A live lmtpd's journal is not read.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { formatStatus, gatherStatus } from '../../../lib/cli/status.js';
import { parseConfig } from '../../../lib/config/index.js';
import { LmtpJournal, replayJournals } from '../../../lib/lmtp/journal.js';
import { SpoolJobStore } from '../../../lib/lmtp/spool-store.js';
import { GroupCommit } from '../../../lib/spool/commit.js';
import { Spool } from '../../../lib/spool/spool.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('counts answered jobs still only in the journal in `out`, and once after they are written out', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-status-journal-'));
  const spool = await Spool.open(join(dir, 'spool'), { create: true });
  const config = parseConfig(`site = "home"\nspool = ${JSON.stringify(spool.root)}\n[peers.hub]\nhost = "127.0.0.1"\n`, join(dir, 'mailbag.toml'));
  const committer = new GroupCommit();
  // hold: answered once flushed to the journal, never written into out/ (as an lmtpd killed then)
  const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold: true });
  expect(journal).toBeDefined();
  const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
  for (const body of ['one\n', 'two\n']) {
    const d = await store.begin({ to: 'hub', command: 'rsmtp', args: [], sender: 's@x.test', recipients: ['a@x.test'] }, { maxSize: 1 << 20 });
    d.write(Buffer.from(body));
    await d.commit();
  }
  expect(await spool.listJobs('out', 'hub')).toEqual([]);
  // while the lmtpd holding the journal lives, its journal is not read (it writes its jobs
  // out within ms, and keeps records of jobs since sent until its reset)
  expect((await gatherStatus(config)).peers[0]!.out).toMatchObject({ jobs: 0 });

  // killed (the journal's lock let go, nothing written out): the answered jobs are shown
  await journal!.abandon();
  const held = await gatherStatus(config);
  expect(held.peers[0]!.out).toMatchObject({ jobs: 2, journal: 2 });
  expect(held.peers[0]!.out.bytes).toBeGreaterThan(0);
  expect(formatStatus(held)).toMatch(/hub +2 jobs, .*; 2 in lmtpd's journal/);

  // the next lmtpd's start replays the journal into out/: counted once, as out/ jobs
  await replayJournals(spool);
  const after = await gatherStatus(config);
  expect(after.peers[0]!.out.jobs).toBe(2);
  expect(after.peers[0]!.out.journal).toBeUndefined();
});
