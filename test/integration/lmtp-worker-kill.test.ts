// Real Postfix delivering through `mailbag lmtpd` with lmtp.workers = 2 (docs/lmtp.md's
// Postfix service: 50 deliveries at once) while one worker is killed with SIGKILL in the
// middle of the flow, as the OOM killer would: lmtpd stops the other worker and exits 75
// (not restarted by itself: the systemd unit's Restart=on-failure does that), Postfix sees
// the connections the dead worker held break and the socket go, and defers — never
// bounces, never drops. Started again (what the supervisor does) and flushed, every
// message is in the spool exactly once: the jobs the dead worker committed are entered in
// the ledger at the start and Postfix's retries of them are answered "already queued".

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { havePostfix, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { makeSharedTempDir, removeTempDir, run } from '../helpers/mta-common.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { childPids, isAlive, readJobs, startLmtpd, tmpLeftovers, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';
import { postfixRecommendation } from '../unit/lmtp/docs-snippets.js';

const N = 150;

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!havePostfix())('Postfix → lmtpd (2 workers), one worker SIGKILLed mid-flow', () => {
  let dir: string | undefined;
  let lmtpd: Lmtpd | undefined;
  let pf: PostfixInstance | undefined;

  afterAll(async () => {
    await pf?.stop();
    if (lmtpd) {
      const pids = childPids(lmtpd.pid);
      await lmtpd.kill();
      for (const p of pids) if (isAlive(p)) process.kill(p, 'SIGKILL');
    }
    if (dir) removeTempDir(dir);
  });

  it('Postfix defers what the dead worker held; after the restart every message is queued once, none bounced', async () => {
    dir = makeSharedTempDir('lmtp-worker-kill');
    const peers = { hub: ['a.test'] };
    lmtpd = await startLmtpd({ dir, peers, workers: 2, socketMode: '0666', extraToml: 'max_connections = 100\n' });
    const rec = postfixRecommendation();
    const hold = join(dir, 'hold-all');
    writeFileSync(hold, 'a.test HOLD\n');
    pf = await startPostfix({
      smtp: true,
      masterCf: rec.masterCf,
      transports: { 'a.test': `${rec.transport}:unix:${lmtpd.socket}` },
      mainCf: [`smtpd_recipient_restrictions = check_recipient_access texthash:${hold}, permit_mynetworks, reject`, 'smtpd_client_connection_count_limit = 0', ...rec.mainCf],
    });
    // every message on hold first, then all released at once: 50 deliveries in flight
    const c = await LmtpClient.connect(pf.smtpPort!, 30_000);
    expect((await c.read()).code).toBe(220);
    await c.cmd('EHLO t.test');
    for (let i = 0; i < N; i++) {
      const r = await c.envelope('MAIL FROM:<s@src.test>', [`RCPT TO:<r${i}@a.test>`]);
      expect(r.map((x) => x.code)).toEqual([250]);
      const [d] = await c.data(`From: s@src.test\nSubject: kill-${i}\n\n${'line of the body\n'.repeat(200)}`, 1);
      expect(d!.code).toBe(250);
    }
    await c.cmd('QUIT');
    c.destroy();
    await until('all held', () => pf!.queued().length === N, 30_000);

    const workers = childPids(lmtpd.pid);
    expect(workers).toHaveLength(2);
    const hub = (): number => readJobs(lmtpd!.spool, 'hub').length;
    const r = await run('/usr/sbin/postsuper', ['-c', pf.configDir, '-H', 'ALL'], { timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    await run('/usr/sbin/postqueue', ['-c', pf.configDir, '-f'], { timeoutMs: 30_000 });
    // the flow is under way: kill worker 1 as the OOM killer would
    await until('the first jobs', () => hub() >= 10, 60_000);
    process.kill(workers[0]!, 'SIGKILL');
    const exit = await Promise.race([lmtpd.exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 45_000))]);
    expect(exit).toEqual({ code: 75, signal: null });
    expect(lmtpd.log()).toMatch(new RegExp(`worker \\d \\(pid ${workers[0]}\\) was killed by SIGKILL: stopping every worker`));
    const before = hub();
    // some mail was left for later (else the kill came too late to test anything)
    await until('Postfix deferred some', () => / status=deferred /.test(pf!.log()), 30_000);
    expect(before).toBeLessThan(N);

    // the supervisor starts it again; Postfix retries
    const first = lmtpd;
    lmtpd = await startLmtpd({ dir, peers, workers: 2, socketMode: '0666', extraToml: 'max_connections = 100\n' });
    expect(first.log() + lmtpd.log()).not.toMatch(/unexpected|internal/i);
    await pf.flush();
    const deadline = Date.now() + 120_000;
    while (pf.queued().length > 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 1_000));
      await pf.flush();
    }
    expect(pf.queued()).toEqual([]);

    const subjects = readJobs(lmtpd.spool, 'hub').map((j) => /Subject: (kill-\d+)/.exec(j.message)?.[1]).sort();
    expect(subjects).toEqual(Array.from({ length: N }, (_, i) => `kill-${i}`).sort());
    const log = pf.log();
    // every delivery either went through or was deferred (4xx, a lost connection, no socket)
    expect(log).not.toMatch(/ status=bounced /);
    expect(log.split('\n').filter((l) => / status=sent /.test(l))).toHaveLength(N);
    expect(await lmtpd.stop()).toBe(0);
    expect(tmpLeftovers(lmtpd.spool)).toEqual([]);
    lmtpd = undefined;
  }, 300_000);
});
