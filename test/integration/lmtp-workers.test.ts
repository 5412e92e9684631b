// `mailbag lmtpd` with lmtp.workers = 2: the unix socket and the TCP port shared by two
// worker processes (node:cluster), the connection limit split between them, a clean stop,
// and the crash paths: a worker killed with SIGKILL right after committing a job stops
// the whole service visibly (exit 75, no process left), the next start records that job
// in the LMTP ledger and the client's retry is recognised, not stored twice; the primary
// killed with SIGKILL takes its workers with it and the next start replaces its socket;
// a worker killed while the service stops is reported (75), not taken for a clean stop.

import { readdirSync, statSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort, makeSharedTempDir, removeTempDir } from '../helpers/mta-common.js';
import { LmtpClient } from '../unit/lmtp/lmtp-client.js';
import { childPids, isAlive, readJobs, startLmtpd, tmpLeftovers, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';

async function session(where: string | number): Promise<LmtpClient> {
  const c = await LmtpClient.connect(where);
  expect((await c.read()).code).toBe(220);
  expect((await c.cmd('LHLO t.test')).code).toBe(250);
  return c;
}

async function deliver(c: LmtpClient, subject: string, rcpts = ['x@a.test']): Promise<string[]> {
  const r = await c.envelope('MAIL FROM:<s@src.test>', rcpts.map((a) => `RCPT TO:<${a}>`));
  expect(r.map((x) => x.code)).toEqual(rcpts.map(() => 250));
  const replies = await c.data(`From: s@src.test\nSubject: ${subject}\n\nbody of ${subject}\n.a dot line\n`, rcpts.length);
  return replies.map((x) => x.raw);
}

/** wait (bounded) until none of the pids is alive */
async function gone(pids: number[], ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pids.some(isAlive)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

describe('lmtpd with two workers', () => {
  let dir: string;
  let lmtpd: Lmtpd | undefined;
  const peers = { hub: ['a.test'], mx2: ['b.test'] };

  beforeEach(() => {
    dir = makeSharedTempDir('lmtp-workers');
  });

  afterEach(async () => {
    if (lmtpd) {
      const pids = childPids(lmtpd.pid);
      await lmtpd.kill();
      await gone(pids);
    }
    lmtpd = undefined;
    removeTempDir(dir);
  });

  it('shares the unix socket and the TCP port between two processes, each taking connections in turn', async () => {
    const port = await freePort();
    lmtpd = await startLmtpd({ dir, peers, workers: 2, listen: `127.0.0.1:${port}` });
    expect(lmtpd.log()).toMatch(/2 workers \(up to 10 connection\(s\) each\), ready/);
    expect(lmtpd.port).toBe(port);
    const workers = childPids(lmtpd.pid);
    expect(workers).toHaveLength(2);
    expect(statSync(lmtpd.socket).mode & 0o777).toBe(0o660);
    // each worker got a thread pool of 64 (UV_THREADPOOL_SIZE from the primary, docs/lmtp.md)
    if (process.env.UV_THREADPOOL_SIZE === undefined) {
      for (const w of workers) expect(readdirSync(`/proc/${w}/task`).length).toBeGreaterThan(64);
      expect(lmtpd.log()).not.toMatch(/UV_THREADPOOL_SIZE is not set/);
    }

    const clients: LmtpClient[] = [];
    for (let i = 0; i < 4; i++) clients.push(await session(i % 2 ? lmtpd.socket : port));
    for (const [i, c] of clients.entries()) {
      expect(await deliver(c, `shared-${i}`, ['x@a.test', 'y@b.test'])).toEqual([
        expect.stringMatching(/^250 2\.6\.0 queued for hub as job /),
        expect.stringMatching(/^250 2\.6\.0 queued for mx2 as job /),
      ]);
    }
    // one job per peer per message, whichever worker took it
    expect(readJobs(lmtpd.spool, 'hub').map((j) => j.message).sort()).toEqual(
      [0, 1, 2, 3].map((i) => `From: s@src.test\nSubject: shared-${i}\n\nbody of shared-${i}\n.a dot line\n`),
    );
    expect(readJobs(lmtpd.spool, 'mx2')).toHaveLength(4);
    // both workers took some: the primary hands connections out in turn
    expect(lmtpd.log()).toMatch(/lmtpd worker 1: job \S+ for hub/);
    expect(lmtpd.log()).toMatch(/lmtpd worker 2: job \S+ for hub/);

    for (const c of clients) c.destroy();
    expect(await lmtpd.stop()).toBe(0);
    expect(lmtpd.log()).toMatch(/lmtpd: group commit: 8 job\(s\) in \d+ batch\(es\)/);
    expect(lmtpd.log()).toMatch(/lmtpd: stopped\n/);
    expect(await gone(workers)).toBe(true);
    expect(() => statSync(lmtpd!.socket)).toThrow();
    lmtpd = undefined;
  });

  it.skipIf(process.env.UV_THREADPOOL_SIZE !== undefined)('one process started without UV_THREADPOOL_SIZE says so (its pool has Node\'s 4 threads); with it, it does not', async () => {
    lmtpd = await startLmtpd({ dir, peers, env: { UV_THREADPOOL_SIZE: '64' } });
    expect(lmtpd.log()).not.toMatch(/UV_THREADPOOL_SIZE is not set/);
    expect(readdirSync(`/proc/${lmtpd.pid}/task`).length).toBeGreaterThan(64);
    expect(await lmtpd.stop()).toBe(0);
    lmtpd = await startLmtpd({ dir, peers });
    expect(readdirSync(`/proc/${lmtpd.pid}/task`).length).toBeLessThan(64);
    expect(lmtpd.log()).toMatch(/lmtpd: UV_THREADPOOL_SIZE is not set: Node's thread pool has 4 threads.*set UV_THREADPOOL_SIZE=64 in lmtpd's environment, or start it as the installed `mailbag` command \(dist\/bin\/mailbag\.cjs\), which does \(docs\/lmtp\.md\)/);
  });

  it('splits lmtp.max_connections between the workers and says so in the 421', async () => {
    lmtpd = await startLmtpd({ dir, peers, workers: 2, extraToml: 'max_connections = 2\n' });
    const a = await session(lmtpd.socket);
    const b = await session(lmtpd.socket);
    const c = await LmtpClient.connect(lmtpd.socket);
    expect((await c.read()).raw).toMatch(/^421 .*too many connections \(lmtp\.max_connections = 2, 1 per worker\)/);
    // the first two still work
    expect(await deliver(a, 'limit-a')).toEqual([expect.stringMatching(/^250 /)]);
    expect(await deliver(b, 'limit-b')).toEqual([expect.stringMatching(/^250 /)]);
    for (const x of [a, b, c]) x.destroy();
  });

  it('a worker killed with SIGKILL right after a commit stops the service (75, nothing left running); the next start records the job and the retry is not stored again', async () => {
    lmtpd = await startLmtpd({ dir, peers, workers: 2, env: { MAILBAG_FAULT: 'lmtp-after-commit' } });
    const workers = childPids(lmtpd.pid);
    expect(workers).toHaveLength(2);
    const c = await session(lmtpd.socket);
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
    const body = 'From: s@src.test\nSubject: killed\n\nthe worker dies after committing this\n';
    await expect(c.data(body, 1)).rejects.toThrow(/closed/);
    c.destroy();

    const exit = await Promise.race([lmtpd.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 40_000))]);
    expect(exit).toEqual({ code: 75, signal: null });
    expect(lmtpd.log()).toMatch(/lmtpd: worker \d \(pid \d+\) was killed by SIGKILL: stopping every worker/);
    expect(await gone(workers)).toBe(true);
    // committed (in out/hub), but the ledger entry was never written
    expect(readJobs(lmtpd.spool, 'hub')).toHaveLength(1);
    const spool = lmtpd.spool;
    lmtpd = undefined;

    lmtpd = await startLmtpd({ dir, peers, workers: 2 });
    expect(lmtpd.log()).toMatch(/recorded 1 job\(s\) committed just before a crash/);
    const again = await session(lmtpd.socket);
    await again.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
    const [r] = await again.data(body, 1);
    expect(r!.raw).toMatch(/^250 2\.6\.0 already queued for hub as job \S+ \(retried transaction\)/);
    again.destroy();
    expect(readJobs(spool, 'hub')).toHaveLength(1);
    expect(tmpLeftovers(spool)).toEqual([]);
  });

  it('a worker killed with SIGKILL while the service stops (one still in DATA) is not a clean stop: 75 and a line saying so; the next start takes mail', async () => {
    lmtpd = await startLmtpd({ dir, peers, workers: 2 });
    const workers = childPids(lmtpd.pid);
    expect(workers).toHaveLength(2);
    // a transaction in DATA keeps its worker through the stop (up to 30 s); the other goes at once
    const c = await session(lmtpd.socket);
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
    c.write('DATA\r\n');
    expect((await c.read()).code).toBe(354);
    c.write('From: s@src.test\r\nSubject: stopping\r\n\r\nhalf of it\r\n');
    process.kill(lmtpd.pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (childPids(lmtpd.pid).length !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const busy = childPids(lmtpd.pid);
    expect(busy).toHaveLength(1);
    expect(lmtpd.log()).toMatch(/lmtpd: SIGTERM: stopping/);
    process.kill(busy[0]!, 'SIGKILL');

    const exit = await Promise.race([lmtpd.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(exit).toEqual({ code: 75, signal: null });
    expect(lmtpd.log()).toMatch(new RegExp(`lmtpd: worker \\d \\(pid ${busy[0]}\\) was killed by SIGKILL while stopping; start lmtpd again`));
    expect(lmtpd.log()).toMatch(/lmtpd: stopped after a worker failed\n/);
    expect(await gone(workers)).toBe(true);
    c.destroy();
    // nothing of the half message was queued
    expect(readJobs(lmtpd.spool, 'hub')).toHaveLength(0);
    lmtpd = undefined;

    lmtpd = await startLmtpd({ dir, peers, workers: 2 });
    const d = await session(lmtpd.socket);
    expect(await deliver(d, 'after-stop-kill')).toEqual([expect.stringMatching(/^250 2\.6\.0 queued for hub/)]);
    d.destroy();
    expect(await lmtpd.stop()).toBe(0);
    expect(lmtpd.log()).toMatch(/lmtpd: stopped\n/);
    lmtpd = undefined;
  });

  it('SIGTERM to every process at once (systemd\'s stop, KillMode=control-group) is a clean stop: a transaction inside DATA finishes, exit 0', async () => {
    lmtpd = await startLmtpd({ dir, peers, workers: 2 });
    const workers = childPids(lmtpd.pid);
    expect(workers).toHaveLength(2);
    const c = await session(lmtpd.socket);
    await c.envelope('MAIL FROM:<s@src.test>', ['RCPT TO:<x@a.test>']);
    c.write('DATA\r\n');
    expect((await c.read()).code).toBe(354);
    c.write('From: s@src.test\r\nSubject: systemctl stop\r\n\r\nfirst half\r\n');
    // systemd signals every process of the unit; each worker handles its own SIGTERM, and
    // then the primary's comes (sent here a moment later, so that the order is certain:
    // at once, as systemd does, a worker took both in one wake-up only sometimes)
    for (const pid of workers) process.kill(pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    if (isAlive(lmtpd.pid)) process.kill(lmtpd.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    c.write('second half\r\n.\r\n');
    const done = await c.read();
    expect(done.raw).toMatch(/^250 2\.6\.0 queued for hub as job /);
    c.destroy();
    const exit = await Promise.race([lmtpd.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 40_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(lmtpd.log()).not.toMatch(/while stopping/);
    expect(lmtpd.log()).toMatch(/lmtpd: stopped\n/);
    expect(await gone(workers)).toBe(true);
    expect(readJobs(lmtpd.spool, 'hub')).toHaveLength(1);
    lmtpd = undefined;
  });

  it('the primary killed with SIGKILL takes its workers with it; the next start replaces the stale socket', async () => {
    lmtpd = await startLmtpd({ dir, peers, workers: 2 });
    const workers = childPids(lmtpd.pid);
    expect(workers).toHaveLength(2);
    const c = await session(lmtpd.socket);
    await lmtpd.kill();
    expect(await gone(workers)).toBe(true);
    c.destroy();
    lmtpd = undefined;

    lmtpd = await startLmtpd({ dir, peers, workers: 2 });
    const d = await session(lmtpd.socket);
    expect(await deliver(d, 'after-primary-kill')).toEqual([expect.stringMatching(/^250 2\.6\.0 queued for hub/)]);
    d.destroy();
  });

  it('a worker that cannot listen stops the service before it is ready (exit 75, the reason on stderr)', async () => {
    // the TCP port is taken: every worker fails to listen on it
    const port = await freePort();
    const { createServer } = await import('node:net');
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    try {
      await expect(startLmtpd({ dir, peers, workers: 2, listen: `127.0.0.1:${port}` })).rejects.toThrow(
        /cannot listen: .*EADDRINUSE[\s\S]*worker \d \(pid \d+\) exited with code 75 while starting/,
      );
    } finally {
      squatter.close();
    }
  });
});
