// `mailbag lmtpd`'s journal (docs/spool.md L7, L8) under SIGKILL at each of its points,
// with a real Postfix delivering: in the middle of a batch's append, after its flush but
// before any 250, after the 250s but before the jobs are written into out/PEER (held:
// killed from outside once Postfix has its 250s), in the middle of writing them (linked,
// directories not fsynced), and once they are durable in out/ but before the journal is
// reset. After the restart (the journal is replayed before lmtpd listens) and Postfix's
// retries, the spool holds every message exactly once per peer, with no tmp leftovers;
// a message Postfix got a 250 for is never lost. Also with two workers, each with its
// journal: a worker killed after a flush stops the service (75) and the restart replays.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { havePostfix } from '../helpers/postfix.js';
import { readJobs, tmpLeftovers, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';
import { usePostfixLmtpd } from '../unit/lmtp/postfix-lmtpd.js';
import { JOURNAL_FAULT_POINTS } from '../../lib/lmtp/journal.js';

const enabled = havePostfix();

describe.skipIf(!enabled)('lmtpd killed with SIGKILL around its journal: each message once per peer, none lost', () => {
  const h = usePostfixLmtpd('lmtp-journal');
  let current: Lmtpd | undefined;

  const count = (spool: string, peer: string, subject: string): number =>
    readJobs(spool, peer).filter((j) => j.message.includes(`Subject: ${subject}\n`)).length;
  // job files in out/PEER only (readJobs also counts what is still only in the journal)
  const files = (spool: string, peer: string): number => (existsSync(join(spool, 'out', peer)) ? readdirSync(join(spool, 'out', peer)).length : 0);

  for (const point of [...JOURNAL_FAULT_POINTS, 'journal-hold']) {
    // killed before any 250 (Postfix retries) or after them (Postfix is done)
    const beforeReply = point === 'journal-mid-append' || point === 'journal-after-flush';
    it(`killed at ${point}`, async () => {
      current = await h.start({ env: { MAILBAG_FAULT: point } });
      const spool = current.spool;
      const before = { hub: readJobs(spool, 'hub').length, mx2: readJobs(spool, 'mx2').length, files: files(spool, 'hub') };
      // small messages (through the journal), one transaction each with a job per peer
      const subjects = [1, 2, 3].map((n) => `journal-${point}-${n}`);
      for (const subject of subjects) {
        const message = `From: s@src.test\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\n${'j'.repeat(60)}\n`;
        expect((await h.pf.sendmail(['-f', 's@src.test', '--', 'x@a.test', 'y@b.test'], message)).code).toBe(0);
      }
      if (point === 'journal-hold') {
        // the jobs are answered but kept only in the journal: Postfix is done with them
        await h.pf.flush();
        await h.pf.waitQueueEmpty(60_000);
        expect(files(spool, 'hub') - before.files).toBe(0);
        expect(readJobs(spool, 'hub').length - before.hub).toBe(subjects.length);
        await current.kill();
      } else {
        const exit = await Promise.race([current.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
        expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
      }
      if (beforeReply) {
        await h.pf.waitLog(/to=<x@a\.test>.*status=deferred/);
        // no reply went out for the killed batch: its transactions are still queued
        expect(h.pf.queued().length).toBeGreaterThanOrEqual(1);
        expect(files(spool, 'hub') - before.files).toBe(0);
      } else {
        // the 250s went out before the kill
        await h.pf.waitLog(/to=<x@a\.test>.*status=sent \(250 [0-9.]+ queued for hub as job/);
      }

      // back up: the journal is replayed into out/ before lmtpd listens, the LMTP ledger
      // learns the replayed jobs, then Postfix retries what it has left
      current = await h.start();
      const log = current.log();
      if (point === 'journal-hold' || point === 'journal-after-flush') expect(log).toMatch(/wrote [1-6] job\(s\) from the LMTP journal into out\//);
      // every job answered was durable in out/ before a reset begins
      if (point === 'journal-before-reset') expect(log).not.toMatch(/from the LMTP journal into out/);
      await h.pf.flush();
      await h.pf.waitQueueEmpty(60_000);
      for (const subject of subjects) {
        expect(count(spool, 'hub', subject), subject).toBe(1);
        expect(count(spool, 'mx2', subject), subject).toBe(1);
      }
      expect(readJobs(spool, 'hub').length - before.hub).toBe(subjects.length);
      expect(readJobs(spool, 'mx2').length - before.mx2).toBe(subjects.length);
      expect(tmpLeftovers(spool)).toEqual([]);
      if (point === 'journal-after-flush') {
        // flushed but unanswered: replayed, and the retry recognised, not stored again
        expect(h.pf.log()).toMatch(/status=sent \(250 2\.6\.0 already queued for (hub|mx2) as job/);
      }
      // an orderly stop leaves nothing in the journal: a restart replays nothing
      await current.stop();
      current = await h.start();
      expect(current.log()).not.toMatch(/from the LMTP journal/);
      expect(readdirSync(join(spool, 'lmtp-journal')).length).toBeGreaterThanOrEqual(1);
      await current.stop();
      current = undefined;
    });
  }

  it('a worker of two killed after its journal flush: the service exits 75, the restart replays, once per peer', async () => {
    const subject = 'journal-worker-killed';
    current = await h.start({ workers: 2, env: { MAILBAG_FAULT: 'journal-after-flush' } });
    const spool = current.spool;
    const before = { hub: readJobs(spool, 'hub').length, mx2: readJobs(spool, 'mx2').length, files: files(spool, 'hub') };
    const message = `From: s@src.test\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\n${'w'.repeat(60)}\n`;
    expect((await h.pf.sendmail(['-f', 's@src.test', '--', 'x@a.test', 'y@b.test'], message)).code).toBe(0);
    const exit = await Promise.race([current.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 45_000))]);
    expect(exit).toEqual({ code: 75, signal: null });
    await h.pf.waitLog(/to=<x@a\.test>.*status=deferred/);
    expect(files(spool, 'hub') - before.files).toBe(0);

    current = await h.start({ workers: 2 });
    expect(current.log()).toMatch(/wrote 2 job\(s\) from the LMTP journal into out\//);
    await h.pf.flush();
    await h.pf.waitQueueEmpty(60_000);
    expect(count(spool, 'hub', subject)).toBe(1);
    expect(count(spool, 'mx2', subject)).toBe(1);
    expect(readJobs(spool, 'hub').length - before.hub).toBe(1);
    expect(readJobs(spool, 'mx2').length - before.mx2).toBe(1);
    expect(tmpLeftovers(spool)).toEqual([]);
    expect(h.pf.log()).toMatch(/status=sent \(250 2\.6\.0 already queued for (hub|mx2) as job/);
    await current.stop();
    current = undefined;
  });
});
