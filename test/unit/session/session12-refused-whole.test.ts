// session12: a bag the far side refuses as a whole, without naming a job of it, is not
// offered again as it was. Before, its jobs went into the same bag again, session after
// session (the same bytes, the same hash: a pending bag kept, or one discarded and built
// again the same), refused every time until queue_lifetime: bandwidth for days and the one
// job at fault never found. Now the jobs of such a bag go one per bag from the next session
// on (bags/out/PEER/alone), so the others cross and the one the far side refuses alone
// fails visibly (failed/PEER/, its sender told); a bag of one job refused `bad-hash` is
// sent once more, built again and from byte 0 (a partial a crash damaged), then fails.
// The far side here is an honest hub whose commit refuses, as a whole, every bag that holds
// one poisoned job: what a broken or hostile peer does.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runSession, type SessionResult } from '../../../lib/session/session.js';
import { BagRefusal, SessionStore, type StagedBag, type CommitOutcome } from '../../../lib/session/store.js';
import { createPair } from '../../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, session, store, tempDir, type Site } from './sites.js';

let hub: Site;
let home: Site;
const cleanups: (() => void)[] = [];
beforeEach(async () => {
  const t = tempDir('s12-refused-whole');
  cleanups.push(t.remove);
  hub = await makeSite(t.dir, 'hub');
  home = await makeSite(t.dir, 'home');
});
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** hub's store: a bag holding `poison` is refused as a whole with `code`, naming no job */
class BrokenStore extends SessionStore {
  /** the bags offered to it, as job counts, in the order their commit came */
  readonly seen: { bag: string; jobs: string[] }[] = [];
  constructor(base: SessionStore, private readonly poison: string, private readonly code: string) {
    super((base as unknown as { options: ConstructorParameters<typeof SessionStore>[0] }).options);
  }

  override async commitStaged(s: StagedBag): Promise<CommitOutcome> {
    this.seen.push({ bag: s.bag, jobs: [...s.committed].sort() });
    if (this.poison === '*' || s.committed.includes(this.poison)) {
      await this.dropStaged(s);
      throw new BagRefusal(this.code, 'the far side is broken: it refuses this bag');
    }
    return super.commitStaged(s);
  }
}

/** one session home -> hub, hub's side broken; both results (hub's may fail: it does not here) */
async function syncOnce(poison: string, code: string): Promise<{ home: SessionResult; hub: BrokenStore }> {
  const s = new BrokenStore(store(hub, 'home'), poison, code);
  await s.open();
  const [a, b] = createPair();
  const [h, f] = await Promise.all([
    session(home, 'hub', a),
    runSession({ link: b, store: s, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500 }),
  ]);
  expect(f.refusedByUs.every((r) => r.job === undefined)).toBe(true);
  return { home: h, hub: s };
}

describe('a bag refused as a whole, no job named (session12)', () => {
  it('its jobs go one per bag next session: the others cross, the one refused alone fails visibly, and nothing is offered a third time', async () => {
    const jobs = [...(await enqueue(home, 'hub', messages([900, 1400, 2100, 2600], 12))).keys()];
    const poison = jobs[2]!;
    const first = await syncOnce(poison, 'bad-bag');
    expect(first.hub.seen).toHaveLength(1);
    expect(first.hub.seen[0]!.jobs).toEqual([...jobs].sort());
    expect(first.home.refusedByPeer.map((r) => r.code)).toEqual(['bad-bag']);
    expect(first.home.drained).toBe(false);
    // nothing failed on a refusal of a bag of several: the fault is not yet one job's
    expect(ids(home, 'out', 'hub')).toEqual([...jobs].sort());
    expect(ids(home, 'failed', 'hub')).toEqual([]);

    const second = await syncOnce(poison, 'bad-bag');
    // not the same bag again: every job alone
    expect(second.hub.seen.map((b) => b.jobs.length)).toEqual([1, 1, 1, 1]);
    expect(second.hub.seen.map((b) => b.bag)).not.toContain(first.hub.seen[0]!.bag);
    expect(ids(hub, 'in', 'home')).toEqual(jobs.filter((j) => j !== poison).sort());
    // the poisoned job, refused alone, failed for good with the far side's words
    expect(ids(home, 'failed', 'hub')).toEqual([poison]);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    const record = readFileSync(join(home.root, 'run', 'hub', poison), 'utf8');
    expect(record).toMatch(/refuses this bag/);
    expect(record).toMatch(/bad-bag/);
    expect(second.home.drained).toBe(false);

    // the third session has nothing to offer and no state left behind
    const third = await syncOnce(poison, 'bad-bag');
    expect(third.hub.seen).toEqual([]);
    expect(third.home.drained).toBe(true);
    expect(existsSync(join(home.root, 'bags', 'out', 'hub', 'alone'))).toBe(false);
  });

  it('a job alone refused bad-hash is sent once more from byte 0, then fails; the others of its first bag cross', async () => {
    const jobs = [...(await enqueue(home, 'hub', messages([1200, 1700], 13))).keys()];
    const poison = jobs[0]!;
    await syncOnce(poison, 'bad-hash');
    expect(ids(home, 'out', 'hub')).toEqual([...jobs].sort());
    // alone: refused bad-hash once (a partial a crash of the far machine damaged is refused
    // so): the job is not failed yet
    const second = await syncOnce(poison, 'bad-hash');
    expect(second.hub.seen.map((b) => b.jobs.length)).toEqual([1, 1]);
    expect(ids(hub, 'in', 'home')).toEqual([jobs[1]!]);
    expect(ids(home, 'out', 'hub')).toEqual([poison]);
    expect(ids(home, 'failed', 'hub')).toEqual([]);
    // refused bad-hash alone a second time, built again and sent from byte 0, while hub
    // takes the new mail of the same session: it fails
    const [late] = (await enqueue(home, 'hub', messages([800], 14))).keys();
    const third = await syncOnce(poison, 'bad-hash');
    expect(third.hub.seen.map((b) => b.jobs)).toEqual([[late], [poison]]);
    expect(third.home.failedAlone).toEqual([poison]);
    expect(ids(home, 'failed', 'hub')).toEqual([poison]);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect((await syncOnce(poison, 'bad-hash')).hub.seen).toEqual([]);
  });

  it('a far side that refuses every bag fails no job: they stay queued, one per bag, and every session says so', async () => {
    const jobs = [...(await enqueue(home, 'hub', messages([700, 1100, 1600], 15))).keys()].sort();
    // every bag holds `*`: hub refuses them all
    const first = await syncOnce('*', 'bad-bag');
    expect(first.hub.seen.map((b) => b.jobs)).toEqual([jobs]);
    expect(first.home.alone).toBe(3);
    for (const n of [2, 3]) {
      const again = await syncOnce('*', 'bad-bag');
      expect(again.hub.seen.map((b) => b.jobs.length), `session ${n}`).toEqual([1, 1, 1]);
      expect(again.home.refusedByPeer).toHaveLength(3);
      expect(again.home.heldAlone).toBe(3);
      expect(again.home.failedAlone).toEqual([]);
      expect(ids(home, 'out', 'hub')).toEqual(jobs);
      expect(ids(home, 'failed', 'hub')).toEqual([]);
    }
  });

  it('a pending bag of jobs listed to go alone (a crash after the list, before the bag was forgotten) is not offered', async () => {
    const jobs = [...(await enqueue(home, 'hub', messages([1000, 1300], 16))).keys()].sort();
    const s = store(home, 'hub');
    await s.open();
    const pending = await s.buildBag(await s.queuedJobs(new Set()), 'gzip');
    await s.setAloneJobs(new Map(jobs.map((j) => [j, 0])));
    const r = await syncOnce('none', 'bad-bag');
    expect(r.hub.seen.map((b) => b.jobs.length)).toEqual([1, 1]);
    expect(r.hub.seen.map((b) => b.bag)).not.toContain(pending.bag);
    expect(ids(hub, 'in', 'home')).toEqual(jobs);
    expect(r.home.drained).toBe(true);
  });
});
