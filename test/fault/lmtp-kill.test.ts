// `mailbag lmtpd` killed with SIGKILL in the middle of DATA, right after a job is
// committed, after every job is durable but before the replies, and at each step of a
// group commit (before the batch's fsyncs, after them but before the jobs are linked
// into out/PEER, after the links but before the directory fsyncs, once durable but
// before any reply): real Postfix keeps the mail (no 250 came), retries once lmtpd is
// back, and the spool then holds every message exactly once per peer, with no tmp
// leftovers (docs/spool.md, "LMTP ingress states"). Also: killed while moving a ledger
// of the earlier format (a file per entry) into day files, the entries survive.

import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { havePostfix } from '../helpers/postfix.js';
import { childPids, isAlive, readJobs, startLmtpd, tmpLeftovers, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { usePostfixLmtpd } from '../unit/lmtp/postfix-lmtpd.js';
import { BATCH_FAULT_POINTS } from '../../lib/spool/fault.js';

const enabled = havePostfix();

describe.skipIf(!enabled)('lmtpd killed with SIGKILL: Postfix retries, the spool holds the message once per peer', () => {
  const h = usePostfixLmtpd('lmtp-kill');
  let current: Lmtpd | undefined;

  for (const point of ['lmtp-mid-data', 'lmtp-after-commit', 'lmtp-before-reply']) {
    it(`killed at ${point}`, async () => {
      const subject = `killed-at-${point}`;
      current = await h.start({ env: { MAILBAG_FAULT: point } });
      const spool = current.spool;
      const before = { hub: readJobs(spool, 'hub').length, mx2: readJobs(spool, 'mx2').length };
      // big enough that DATA arrives in several chunks
      const body = `${'k'.repeat(70)}\n`.repeat(3000);
      const message = `From: s@src.test\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\n${body}`;
      expect((await h.pf.sendmail(['-f', 's@src.test', '--', 'x@a.test', 'y@b.test', 'z@a.test'], message)).code).toBe(0);

      const exit = await Promise.race([current.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
      expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
      await h.pf.waitLog(new RegExp(`to=<x@a\\.test>.*status=deferred`));
      expect(h.pf.queued()).toHaveLength(1);
      // mid-DATA the partial jobs are tmp files of a dead process (or were in its memory:
      // lmtpd's journal holds a job in memory until it outgrows the journal), never in out/
      if (point === 'lmtp-mid-data') expect(readJobs(spool, 'hub').length - before.hub).toBe(0);
      expect(readJobs(spool, 'hub').length - before.hub).toBeLessThanOrEqual(1);

      // back up (the spool's start-up cleanup removes the dead writer's tmp files; the
      // LMTP ledger learns any job committed just before the kill), then Postfix retries
      current = await h.start();
      if (point === 'lmtp-after-commit') expect(current.log()).toMatch(/recorded [12] job\(s\) committed just before a crash/);
      await h.pf.flush();
      await h.pf.waitQueueEmpty(60_000);
      const hub = readJobs(spool, 'hub').filter((j) => j.message.includes(`Subject: ${subject}\n`));
      const mx2 = readJobs(spool, 'mx2').filter((j) => j.message.includes(`Subject: ${subject}\n`));
      expect(hub).toHaveLength(1);
      expect(mx2).toHaveLength(1);
      expect([...hub[0]!.header.recipients].sort()).toEqual(['x@a.test', 'z@a.test']);
      expect(hub[0]!.message.endsWith(`\n\n${body}`)).toBe(true);
      expect(readJobs(spool, 'hub').length - before.hub).toBe(1);
      expect(readJobs(spool, 'mx2').length - before.mx2).toBe(1);
      expect(tmpLeftovers(spool)).toEqual([]);
      if (point !== 'lmtp-mid-data') {
        // the retry was recognised, not stored again
        expect(h.pf.log()).toMatch(/status=sent \(250 2\.6\.0 already queued for (hub|mx2) as job/);
      }
      await current.stop();
      current = undefined;
    });
  }

  for (const point of BATCH_FAULT_POINTS) {
    it(`killed at ${point}`, async () => {
      current = await h.start({ env: { MAILBAG_FAULT: point } });
      const spool = current.spool;
      const before = { hub: readJobs(spool, 'hub').length, mx2: readJobs(spool, 'mx2').length };
      // each message is one transaction with a job for each peer: the two jobs end
      // together and go in one batch, with a directory fsync for each of out/hub, out/mx2.
      // Larger than lmtpd's journal takes (lib/lmtp/journal.ts, JOURNAL_MAX_JOB): these
      // are staged in tmp/ and committed by GroupCommit (test/fault/lmtp-journal.test.ts
      // kills it around the journal)
      const subjects = [1, 2, 3].map((n) => `batch-${point}-${n}`);
      for (const subject of subjects) {
        const message = `From: s@src.test\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\n${`${'b'.repeat(60)}\n`.repeat(2500)}`;
        expect((await h.pf.sendmail(['-f', 's@src.test', '--', 'x@a.test', 'y@b.test'], message)).code).toBe(0);
      }

      const exit = await Promise.race([current.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
      expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
      await h.pf.waitLog(/to=<x@a\.test>.*status=deferred/);
      // no reply went out for the killed batch: its transactions are still queued
      expect(h.pf.queued().length).toBeGreaterThanOrEqual(1);
      const placed = readJobs(spool, 'hub').length - before.hub;
      if (point === 'batch-before-fsync' || point === 'batch-after-fsync') {
        // nothing reached out/PEER; the batch's files are tmp files of a dead process
        expect(placed).toBe(0);
        expect(tmpLeftovers(spool).length).toBeGreaterThan(0);
      } else {
        expect(placed).toBeGreaterThanOrEqual(1);
      }

      // back up: the start-up cleanup removes the dead writer's tmp files, the LMTP ledger
      // learns the jobs linked just before the kill; then Postfix retries
      current = await h.start();
      if (placed > 0) expect(current.log()).toMatch(/recorded \d+ job\(s\) committed just before a crash/);
      await h.pf.flush();
      await h.pf.waitQueueEmpty(60_000);
      for (const subject of subjects) {
        const hub = readJobs(spool, 'hub').filter((j) => j.message.includes(`Subject: ${subject}\n`));
        const mx2 = readJobs(spool, 'mx2').filter((j) => j.message.includes(`Subject: ${subject}\n`));
        expect(hub, subject).toHaveLength(1);
        expect(mx2, subject).toHaveLength(1);
        expect(hub[0]!.header.recipients).toEqual(['x@a.test']);
        expect(mx2[0]!.header.recipients).toEqual(['y@b.test']);
      }
      expect(readJobs(spool, 'hub').length - before.hub).toBe(subjects.length);
      expect(readJobs(spool, 'mx2').length - before.mx2).toBe(subjects.length);
      expect(tmpLeftovers(spool)).toEqual([]);
      if (placed > 0) {
        // the retry of a transaction whose jobs were linked was recognised, not stored again
        expect(h.pf.log()).toMatch(/status=sent \(250 2\.6\.0 already queued for (hub|mx2) as job/);
      }
      await current.stop();
      current = undefined;
    });
  }

  // lmtp.workers = 2: the worker that takes the delivery dies; the primary stops the other
  // one and exits 75 (no worker is restarted before the start-up recovery has run)
  for (const point of ['lmtp-after-commit', 'batch-after-dir-fsync']) {
    it(`a worker of two killed at ${point}: the service exits 75, Postfix retries after the restart, once per peer`, async () => {
      const subject = `worker-killed-at-${point}`;
      current = await h.start({ workers: 2, env: { MAILBAG_FAULT: point } });
      const spool = current.spool;
      const workers = childPids(current.pid);
      expect(workers).toHaveLength(2);
      const before = { hub: readJobs(spool, 'hub').length, mx2: readJobs(spool, 'mx2').length };
      // batch-after-dir-fsync is GroupCommit's: a message larger than the journal takes
      const body = point === 'batch-after-dir-fsync' ? `${'w'.repeat(60)}\n`.repeat(2500) : `${'w'.repeat(60)}\n`;
      const message = `From: s@src.test\nSubject: ${subject}\nMessage-ID: <${subject}@src.test>\n\n${body}`;
      expect((await h.pf.sendmail(['-f', 's@src.test', '--', 'x@a.test', 'y@b.test'], message)).code).toBe(0);

      const exit = await Promise.race([current.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 45_000))]);
      expect(exit).toEqual({ code: 75, signal: null });
      expect(current.log()).toMatch(/worker \d \(pid \d+\) was killed by SIGKILL: stopping every worker/);
      expect(workers.some(isAlive)).toBe(false);
      await h.pf.waitLog(/to=<x@a\.test>.*status=deferred/);
      expect(readJobs(spool, 'hub').length - before.hub).toBeGreaterThanOrEqual(1);

      current = await h.start({ workers: 2 });
      expect(current.log()).toMatch(/recorded [12] job\(s\) committed just before a crash/);
      await h.pf.flush();
      await h.pf.waitQueueEmpty(60_000);
      expect(readJobs(spool, 'hub').filter((j) => j.message.includes(`Subject: ${subject}\n`))).toHaveLength(1);
      expect(readJobs(spool, 'mx2').filter((j) => j.message.includes(`Subject: ${subject}\n`))).toHaveLength(1);
      expect(readJobs(spool, 'hub').length - before.hub).toBe(1);
      expect(readJobs(spool, 'mx2').length - before.mx2).toBe(1);
      expect(tmpLeftovers(spool)).toEqual([]);
      expect(h.pf.log()).toMatch(/status=sent \(250 2\.6\.0 already queued for (hub|mx2) as job/);
      await current.stop();
      current = undefined;
    });
  }

  it('killed while moving ledger entries of the earlier format into day files: every entry survives, a retry is still recognised', async () => {
    const home = join(h.dir, 'migrate');
    mkdirSync(home, { recursive: true });
    const sock = join(home, 'lmtp.sock');
    const send = async (): Promise<string> => {
      const c = await LmtpClient.connect(sock);
      try {
        await c.read();
        await c.cmd('LHLO mta.test');
        await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
        const [r] = await c.data('Subject: migrate\n\nbody\n', 1);
        return r!.raw;
      } finally {
        c.destroy();
      }
    };
    current = await h.start({ dir: home, socket: sock, socketMode: undefined });
    const first = await send();
    const id = /queued for hub as job (\w+)$/.exec(first)?.[1];
    expect(id, first).toBeDefined();
    await current.stop();
    current = undefined;
    // make the spool look like one of the earlier format: the entry as a file of its own
    const ledgerDir = join(home, 'spool', 'lmtp-ledger', 'hub');
    const [day] = readdirSync(ledgerDir);
    const [, line] = readFileSync(join(ledgerDir, day!), 'latin1').split('\n');
    const [digest, entryId] = line!.split(' ');
    expect(entryId).toBe(id);
    unlinkSync(join(ledgerDir, day!));
    writeFileSync(join(ledgerDir, digest!), `mailbag-lmtp-ledger 1\n${id}\n`);

    // killed after the day file is written and fsynced, before the old entry goes
    await expect(startLmtpd({ dir: home, peers: h.peers, socket: sock, env: { MAILBAG_FAULT: 'lmtp-ledger-migrated' } })).rejects.toThrow(/exited before it was ready/);
    expect(existsSync(join(ledgerDir, digest!))).toBe(true);
    expect(readdirSync(ledgerDir).filter((n) => /^\d{4}-/.test(n))).toHaveLength(1);

    current = await h.start({ dir: home, socket: sock, socketMode: undefined });
    expect(current.log()).toMatch(/moved 1 LMTP ledger entry of the earlier format/);
    expect(readdirSync(ledgerDir).filter((n) => !/^\d{4}-/.test(n))).toEqual([]);
    expect(await send()).toMatch(new RegExp(`already queued for hub as job ${id} \\(retried transaction\\)`));
    expect(readJobs(join(home, 'spool'), 'hub')).toHaveLength(1);
    expect(tmpLeftovers(join(home, 'spool'))).toEqual([]);
    await current.stop();
    current = undefined;
  });
});
