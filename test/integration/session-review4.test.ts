// Review of the receiver-staging change (0aa6785…0b9704f): the moves into in/PEER/ run
// after the ACK, outside the commit chain; the session's result (and so the release of
// the session lock) must still wait for them on every path, also a broken session.

import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createPair } from '../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, session, store, tempDir } from '../unit/session/sites.js';
import { runSession, type SessionResult } from '../../lib/session/session.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('a session that breaks while a bag is being committed', () => {
  it('settles only after the moves of the bag it committed (the lock is not released under them)', async () => {
    const t = tempDir('review4-broken');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const up = await enqueue(home, 'hub', messages(Array.from({ length: 10 }, (_, i) => 2000 + 50 * i), 91));
    const sHome = store(home, 'hub');
    await sHome.open();
    const sHub = store(hub, 'home');
    await sHub.open();
    const [a, b] = createPair();
    const events: string[] = [];
    // the link breaks while the hub records the commit point: the session fails then,
    // and the commit chain goes on to the ACK and starts the moves afterwards
    const commit = sHub.commitStaged.bind(sHub);
    sHub.commitStaged = async (s) => {
      const r = await commit(s);
      a.abort(new Error('cut on purpose'));
      await new Promise((res) => setTimeout(res, 100));
      events.push('hub committed');
      return r;
    };
    const moved = sHub.moveCommitted.bind(sHub);
    sHub.moveCommitted = async (bag) => {
      await new Promise((res) => setTimeout(res, 400));
      await moved(bag);
      events.push('hub moved');
    };
    const [rHome, rHub] = (await Promise.allSettled([
      runSession({ link: a, store: sHome, site: 'home', peer: 'hub', codecs: ['br'], caps: CAPS }),
      runSession({ link: b, store: sHub, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS }).finally(() => events.push('hub settled')),
    ])) as [PromiseSettledResult<SessionResult>, PromiseSettledResult<SessionResult>];
    expect(rHome.status).toBe('rejected');
    expect(rHub.status).toBe('rejected');
    expect(events).toContain('hub committed');
    // the hub's session must not settle (its caller releases the lock session-home next,
    // and a new session's recovery would move the same bag at once) before its moves
    expect(events).toEqual(['hub committed', 'hub moved', 'hub settled']);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home'))).toEqual([]);
  });
});

describe('a committed bag not yet moved (S7) that was acknowledged', () => {
  it('keeps its jobs when the next open prunes its ledger line (retention passed before the next session)', async () => {
    const t = tempDir('review4-prune');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const up = await enqueue(home, 'hub', messages([1500, 2500, 900], 17));
    const sHome = store(home, 'hub');
    await sHome.open();
    const sHub = store(hub, 'home');
    await sHub.open();
    // the hub commits and acknowledges, then its moves do not happen (a SIGKILL after BYE
    // leaves the same files): S7, and the home side has removed the acknowledged jobs
    sHub.moveCommitted = async () => {
      await new Promise((r) => setTimeout(r, 200)); // after both BYEs
      throw new Error('killed before the moves');
    };
    const [a, b] = createPair();
    const [rHome, rHub] = await Promise.allSettled([
      runSession({ link: a, store: sHome, site: 'home', peer: 'hub', codecs: ['br'], caps: CAPS }),
      runSession({ link: b, store: sHub, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS }),
    ]);
    expect(rHome.status).toBe('fulfilled');
    expect(rHub.status).toBe('rejected');
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home')).some((n) => n.endsWith('.d'))).toBe(true);
    // the next session with home comes after the ledger's retention: its line is pruned
    // on open; the recovery must still move the acknowledged jobs, not remove them
    await new Promise((r) => setTimeout(r, 20));
    await store(hub, 'home', { retentionMs: 5 }).open();
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home'))).toEqual([]);
  });
});

describe('a stage worker that dies while a bag is staged', () => {
  it('fails the receiving session with nothing committed or left behind; the next session stores every job once', async () => {
    const { configureStageWorker, stopStageWorker } = await import('../../lib/session/stage-ops.js');
    const script = new URL('../unit/session/ts-stage-worker.mjs', import.meta.url);
    const t = tempDir('review4-worker-dies');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const up = await enqueue(home, 'hub', messages(Array.from({ length: 20 }, (_, i) => 1000 + 37 * i), 23));
    await stopStageWorker();
    configureStageWorker({ script, workerData: { exit: 3 } });
    try {
      const [a, b] = createPair();
      const [rHome, rHub] = await Promise.allSettled([session(home, 'hub', a), session(hub, 'home', b)]);
      expect(rHub.status).toBe('rejected');
      expect(String((rHub as PromiseRejectedResult).reason)).toMatch(/stage worker/);
      expect(rHome.status).toBe('rejected');
      // nothing committed, nothing moved, no staging directory; the sender kept every job
      expect(ids(hub, 'in', 'home')).toEqual([]);
      expect(readdirSync(join(hub.root, 'bags', 'in', 'home')).filter((n) => n.endsWith('.d'))).toEqual([]);
      expect(ids(home, 'out', 'hub')).toEqual([...up.keys()].sort());
    } finally {
      await stopStageWorker();
      configureStageWorker({ script });
    }
    const [a, b] = createPair();
    const [rHome, rHub] = await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
    expect(rHome.sent.jobs).toBe(up.size);
    expect(rHub.received).toMatchObject({ jobs: up.size, duplicates: 0 });
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(ids(home, 'out', 'hub')).toEqual([]);
  });
});
