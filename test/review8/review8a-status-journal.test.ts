// review8a: cd9d83c counts in `mailbag status`'s out column the jobs lmtpd's journal holds
// that are not in out/PEER (journalJobs: "what lmtpd holds that a listing of out/ does
// not show"). A running lmtpd keeps a job's record in its journal after writing it into
// out/ until the next reset (200 ms after mail pauses; under steady load only when the
// journal is full, 64 MiB, about 5,000 messages: docs/spool.md L8). A job written out and
// then sent by a session (removed from out/ on the peer's acknowledgement) before that
// reset is counted again as "in lmtpd's journal": status shows mail waiting that the
// peer already has, with its age. Reported in /work/brief/req-review8a.md (the lead).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { gatherStatus } from '../../lib/cli/status.js';
import { parseConfig } from '../../lib/config/index.js';
import { LmtpJournal } from '../../lib/lmtp/journal.js';
import { SpoolJobStore } from '../../lib/lmtp/spool-store.js';
import { GroupCommit } from '../../lib/spool/commit.js';
import { Spool } from '../../lib/spool/spool.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('a job a running lmtpd wrote into out/ and a session then sent is not counted as waiting in the journal', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-review8a-journal-'));
  const spool = await Spool.open(join(dir, 'spool'), { create: true });
  const config = parseConfig(`site = "home"\nspool = ${JSON.stringify(spool.root)}\n[peers.hub]\nhost = "127.0.0.1"\n`, join(dir, 'mailbag.toml'));
  const committer = new GroupCommit();
  const { journal } = await LmtpJournal.open(spool, { fallback: committer });
  expect(journal).toBeDefined();
  try {
    const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
    // a few tries: each must see status before the journal's idle reset (200 ms) retires
    // the records; a try where the reset came first says nothing either way
    let measured: number | undefined;
    for (let attempt = 0; attempt < 5 && measured === undefined; attempt++) {
      const resets = journal!.stats.resets;
      const d = await store.begin({ to: 'hub', command: 'rsmtp', args: [], sender: 's@x.test', recipients: ['a@x.test'] }, { maxSize: 1 << 20 });
      d.write(Buffer.from(`message ${attempt}\n`));
      await d.commit();
      // lmtpd writes it into out/hub a few ms after its 250 (bounded wait)
      const until = Date.now() + 5000;
      let refs = await spool.listJobs('out', 'hub');
      while (refs.length === 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 2));
        refs = await spool.listJobs('out', 'hub');
      }
      expect(refs.length).toBe(1);
      // a session sends it and removes it on the peer's acknowledgement
      for (const r of refs) rmSync(r.path);
      const s = await gatherStatus(config);
      if (journal!.stats.resets === resets) measured = s.peers[0]!.out.jobs;
    }
    expect(measured, 'the journal was reset before every look (inconclusive)').toBeDefined();
    // nothing waits: the peer has the job
    expect(measured).toBe(0);
  } finally {
    await journal!.close(5000);
  }
});
