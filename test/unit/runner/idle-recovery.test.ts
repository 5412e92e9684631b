// lib/session/idle-recovery.ts in process, on hand-made spool states (docs/spool.md S4,
// S6, S7): what the runner finishes when no session runs, what it leaves to a live one,
// and what `mailbag status` reads (without touching anything). The killed-process
// stories are in test/fault/runner-idle-recovery.test.ts.

import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { inspectUnfinished, leftovers, recoverIdlePeer } from '../../../lib/session/idle-recovery.js';
import { jobsWaiting } from '../../../lib/session/index.js';
import { runJobs } from '../../../lib/runner/runner.js';
import { makeSite, RMAIL_PAYLOAD, type Site } from './helpers.js';

let site: Site | undefined;
afterEach(() => {
  site?.cleanup();
  site = undefined;
});

const HASH = 'ab'.repeat(32);

/** `n` received jobs moved from in/hub/ into bags/in/hub/HASH.d/; the ledger line when committed (torn: without its newline) */
async function stagedBag(s: Site, n: number, ledger: 'committed' | 'none' | 'torn'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await s.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example' }, RMAIL_PAYLOAD));
  const dir = join(s.spool.root, 'bags', 'in', 'hub', `${HASH}.d`);
  mkdirSync(dir, { recursive: true });
  for (const id of ids) renameSync(join(s.spool.root, 'in', 'hub', id), join(dir, id));
  writeFileSync(join(s.spool.root, 'bags', 'in', 'hub', `${HASH}.part`), 'partial bytes');
  mkdirSync(join(s.spool.root, 'ledger'), { recursive: true });
  const line = `${Date.now()} ${HASH} ${ids.join(',')}`;
  if (ledger !== 'none') writeFileSync(join(s.spool.root, 'ledger', 'hub'), `mailbag-ledger 1\n${line}${ledger === 'torn' ? '' : '\n'}`);
  return ids.sort();
}

const inQueue = (s: Site): string[] => readdirSync(join(s.spool.root, 'in', 'hub')).sort();

describe('finishing a dead session without one', () => {
  it('nothing left: two directory reads, no lock taken, no ledger made', async () => {
    site = await makeSite();
    expect(await leftovers(site.spool.root, 'hub')).toEqual({ staged: [], acked: [] });
    expect(await recoverIdlePeer(site.config, site.spool, 'hub')).toEqual({ peer: 'hub', state: 'clean', moved: 0, removed: 0 });
    expect(existsSync(join(site.spool.root, 'ledger', 'hub'))).toBe(false);
    expect(readdirSync(join(site.spool.root, 'locks'))).toEqual([]);
  });

  it('a committed bag (S7): status sees its jobs; the recovery moves them into in/PEER/ and removes HASH.d/ and HASH.part', async () => {
    site = await makeSite();
    const ids = await stagedBag(site, 3, 'committed');
    expect(inQueue(site)).toEqual([]);
    expect(await jobsWaiting(site.config, 'hub')).toBe(false);
    const u = await inspectUnfinished(site.spool.root, 'hub');
    expect(u.unmoved).toMatchObject({ bags: 1, jobs: 3, oldest: ids[0] });
    expect(u.unmoved.bytes).toBeGreaterThan(3 * RMAIL_PAYLOAD.length);
    expect(u.unmoved.oldestWrittenMs).toBeGreaterThan(0);
    expect(u.acked.jobs).toBe(0);
    // inspecting changed nothing
    expect(readdirSync(join(site.spool.root, 'bags', 'in', 'hub')).sort()).toEqual([`${HASH}.d`, `${HASH}.part`]);
    expect(await recoverIdlePeer(site.config, site.spool, 'hub')).toEqual({ peer: 'hub', state: 'recovered', moved: 3, removed: 0 });
    expect(inQueue(site)).toEqual(ids);
    expect(await jobsWaiting(site.config, 'hub')).toBe(true);
    expect(readdirSync(join(site.spool.root, 'bags', 'in', 'hub'))).toEqual([]);
    expect(readdirSync(join(site.spool.root, 'locks'))).toEqual([]);
  });

  it('an uncommitted bag (S6, or a torn ledger line) is not counted, and is removed as a session would (the sender still has it)', async () => {
    for (const ledger of ['none', 'torn'] as const) {
      site?.cleanup();
      site = await makeSite();
      await stagedBag(site, 2, ledger);
      expect((await inspectUnfinished(site.spool.root, 'hub')).unmoved.jobs).toBe(0);
      expect(await recoverIdlePeer(site.config, site.spool, 'hub')).toMatchObject({ state: 'recovered', moved: 0 });
      expect(inQueue(site)).toEqual([]);
      // the partial stays for the resume (S5)
      expect(readdirSync(join(site.spool.root, 'bags', 'in', 'hub'))).toEqual([`${HASH}.part`]);
    }
  });

  it('a live holder of the session lock: nothing is touched, and the runner delivers only what is in in/PEER/', async () => {
    site = await makeSite();
    const ids = await stagedBag(site, 2, 'committed');
    // one job already in in/hub/ (moved before the session was killed): the runner's, lock or not
    await site.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example' }, RMAIL_PAYLOAD);
    const lock = await site.spool.lock('session-hub');
    try {
      const r = await recoverIdlePeer(site.config, site.spool, 'hub');
      expect(r).toMatchObject({ state: 'busy', moved: 0, removed: 0 });
      expect(r.reason).toContain(`lock session-hub is held by pid ${process.pid}`);
      const lines: string[] = [];
      const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => lines.push(l) });
      expect(summary).toEqual({ done: 1, retry: 0, failed: 0, skipped: 0 });
      expect(lines.join('\n')).toContain('hub: a session is running (lock session-hub is held by pid');
      expect(readdirSync(join(site.spool.root, 'bags', 'in', 'hub', `${HASH}.d`)).sort()).toEqual(ids);
      expect(site.sendmailCalls()).toHaveLength(1);
      expect(inQueue(site)).toEqual([]);
    } finally {
      await lock.release();
    }
    const lines: string[] = [];
    expect(await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => lines.push(l) })).toEqual({ done: 2, retry: 0, failed: 0, skipped: 0 });
    expect(lines[0]).toBe('hub: finished an earlier session: 2 received job(s) moved into in/hub/, 0 acknowledged job(s) removed from out/hub/');
    expect(site.sendmailCalls()).toHaveLength(3);
  });

  it('an acknowledged bag (S4): status counts its jobs apart; the recovery removes them, the bag and the marker', async () => {
    site = await makeSite();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const id = await site.receive({ command: 'rmail', args: ['r@y.example'] }, RMAIL_PAYLOAD);
      mkdirSync(join(site.spool.root, 'out', 'hub'), { recursive: true });
      renameSync(join(site.spool.root, 'in', 'hub', id), join(site.spool.root, 'out', 'hub', id));
      ids.push(id);
    }
    const bags = join(site.spool.root, 'bags', 'out', 'hub');
    mkdirSync(bags, { recursive: true });
    writeFileSync(join(bags, `${HASH}.acked`), `mailbag-bag 1\ncodec zstd\n${ids.join('\n')}\n`);
    writeFileSync(join(bags, `${HASH}.bag`), 'bag bytes');
    expect((await inspectUnfinished(site.spool.root, 'hub')).acked).toMatchObject({ bags: 1, jobs: 2, oldest: ids.sort()[0] });
    expect(await recoverIdlePeer(site.config, site.spool, 'hub')).toEqual({ peer: 'hub', state: 'recovered', moved: 0, removed: 2 });
    expect(readdirSync(join(site.spool.root, 'out', 'hub'))).toEqual([]);
    expect(readdirSync(bags)).toEqual([]);
  });

  it('a peer the configuration does not name is left alone', async () => {
    site = await makeSite();
    await stagedBag(site, 1, 'committed');
    renameSync(join(site.spool.root, 'bags', 'in', 'hub'), join(site.spool.root, 'bags', 'in', 'stranger'));
    await runJobs({ config: site.config, spool: site.spool, env: site.env });
    expect(readdirSync(join(site.spool.root, 'bags', 'in', 'stranger'))).toHaveLength(2);
  });

  it('another runner holding the peer\'s runner lock (and, in its recovery, the session lock) is named as a runner, not a session; nothing is touched', async () => {
    site = await makeSite();
    const ids = await stagedBag(site, 2, 'committed');
    // what another run holds while it finishes the killed session: its runner lock, then the session lock
    const runner = await site.spool.lock('runner.hub');
    const session = await site.spool.lock('session-hub');
    try {
      const lines: string[] = [];
      const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => lines.push(l) });
      expect(summary).toEqual({ done: 0, retry: 0, failed: 0, skipped: 1 });
      expect(lines).toEqual([`hub: another runner is at work (lock runner.hub is held by pid ${process.pid} since ${runner.info.since}); it runs hub's jobs, also those that come in before it ends`]);
      expect(readdirSync(join(site.spool.root, 'bags', 'in', 'hub', `${HASH}.d`)).sort()).toEqual(ids);
      expect(inQueue(site)).toEqual([]);
    } finally {
      await session.release();
      await runner.release();
    }
  });

  it('a job moved in just as the runner lets go of its lock (its mover found the lock taken) is run: the runner looks again after letting go', async () => {
    site = await makeSite();
    await site.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example' }, RMAIL_PAYLOAD);
    let takings = 0;
    let late: string | undefined;
    const lock = site.spool.lock.bind(site.spool);
    const s = site;
    site.spool.lock = async (name, opts) => {
      const l = await lock(name, opts);
      if (name !== 'runner.hub') return l;
      takings++;
      const release = l.release;
      // a session moves a job in while the lock is still ours, and finds it taken
      return { ...l, release: async () => {
        if (late === undefined) late = await s.receive({ command: 'rmail', args: ['r@y.example'], sender: 's@x.example' }, RMAIL_PAYLOAD);
        await release();
      } };
    };
    const lines: string[] = [];
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => lines.push(l) });
    expect(summary).toEqual({ done: 2, retry: 0, failed: 0, skipped: 0 });
    expect(lines).toContain(`hub/${late}: done`);
    expect(takings).toBe(2);
    expect(inQueue(site)).toEqual([]);
    // nothing new: the lock is taken once
    takings = 0;
    expect(await runJobs({ config: site.config, spool: site.spool, env: site.env })).toEqual({ done: 0, retry: 0, failed: 0, skipped: 0 });
    expect(takings).toBe(1);
  });

  it('a file at the session lock\'s name that is not a lock is no running session: the run says it cannot finish the earlier session and fails (not "a session is running", exit 0)', async () => {
    site = await makeSite();
    const ids = await stagedBag(site, 2, 'committed');
    const junk = join(site.spool.root, 'locks', 'session-hub.lock');
    writeFileSync(junk, '');
    await expect(recoverIdlePeer(site.config, site.spool, 'hub')).rejects.toThrow(`spool: ${junk} is not a mailbag lock file; remove it if no mailbag is running`);
    const lines: string[] = [];
    const summary = await runJobs({ config: site.config, spool: site.spool, env: site.env, log: (l) => lines.push(l) });
    expect(lines.join('\n')).not.toContain('a session is running');
    expect(summary.unfinished).toHaveLength(1);
    expect(summary.unfinished![0]!.error.exitCode).toBe(75);
    expect(summary.unfinished![0]!.error.message).toBe(`hub: cannot finish an earlier session (2 committed job(s) wait in bags/in/hub/, 0 acknowledged job(s) in out/hub/): spool: ${junk} is not a mailbag lock file; remove it if no mailbag is running`);
    // nothing touched: the jobs wait where they are
    expect(readdirSync(join(site.spool.root, 'bags', 'in', 'hub', `${HASH}.d`)).sort()).toEqual(ids);
    expect(site.sendmailCalls()).toHaveLength(0);
  });
});
