// review12 (req-review12.md F2): 83e5304 rewrites the whole bags/out/PEER/alone list for
// every bag the peer refuses as a whole (Session.onRefused → SessionStore.setAloneJobs):
// a stat of every listed job (sizeOfSync) and a commit (tmp, fsync, rename, directory
// fsync) per refusal, one after another on aloneChain. With N jobs listed and a peer that
// refuses every bag (the broken far side the design names: "does PEER refuse every bag?"),
// each later session offers N bags of one job and pays N commits of N lines: N² stats and
// N fsynced rewrites, every session. max_jobs_per_bag is 10,000 by default, so one refused
// bag lists 10,000 jobs: 10^8 synchronous stats on the session's thread, and 10,000 fsyncs
// in a row, per session. The list need not be durable before each bag is forgotten one by
// one: it can be written once per session (req-review12.md F2). This test counts what
// home's store writes in the second session (it.fails until Session.settleAlone).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runSession } from '../../lib/session/session.js';
import { BagRefusal, SessionStore, type CommitOutcome, type StagedBag } from '../../lib/session/store.js';
import { createPair } from '../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, session, store, tempDir, type Site } from '../unit/session/sites.js';

let hub: Site;
let home: Site;
const cleanups: (() => void)[] = [];
beforeEach(async () => {
  const t = tempDir('r12-alone-rewrites');
  cleanups.push(t.remove);
  hub = await makeSite(t.dir, 'hub');
  home = await makeSite(t.dir, 'home');
});
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

type StoreOptions = ConstructorParameters<typeof SessionStore>[0];
const optionsOf = (s: SessionStore): StoreOptions => (s as unknown as { options: StoreOptions }).options;

/** hub: refuses every bag as a whole, naming no job (a broken far side) */
class RefusesAll extends SessionStore {
  override async commitStaged(s: StagedBag): Promise<CommitOutcome> {
    await this.dropStaged(s);
    throw new BagRefusal('bad-bag', 'the far side is broken: it refuses every bag');
  }
}

/** home: counts the writes of the alone list and the lines they hold */
class Counting extends SessionStore {
  writes = 0;
  lines = 0;
  ms = 0;
  override async setAloneJobs(jobs: ReadonlyMap<string, number>): Promise<void> {
    this.writes++;
    this.lines += jobs.size;
    const t = performance.now();
    await super.setAloneJobs(jobs);
    this.ms += performance.now() - t;
  }
}

async function syncOnce(): Promise<Counting> {
  const far = new RefusesAll(optionsOf(store(hub, 'home')));
  await far.open();
  const near = new Counting(optionsOf(store(home, 'hub')));
  await near.open();
  const [a, b] = createPair();
  await Promise.all([
    session(home, 'hub', a, { store: near }),
    runSession({ link: b, store: far, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500 }),
  ]);
  return near;
}

describe('review12: the alone list under a peer that refuses every bag', () => {
  it('is written a bounded number of times per session, not once per refused bag (N² lines)', async () => {
    const n = Number(process.env.R12_N ?? 300);
    await enqueue(home, 'hub', messages(Array.from({ length: n }, () => 200), 21));
    await syncOnce(); // one bag of 300, refused: all 300 listed
    const t0 = process.cpuUsage();
    const second = await syncOnce(); // 300 bags of one, each refused
    const cpu = process.cpuUsage(t0);
    expect(ids(home, 'out', 'hub')).toHaveLength(n); // nothing lost, nothing failed
    // 83e5304: writes = 300, lines = 90,000 (300 commits of the whole list)
    console.log(`review12: second session: ${second.writes} writes of the alone list, ${second.lines} lines (${Math.round(second.ms)} ms in them), cpu ${Math.round((cpu.user + cpu.system) / 1000)} ms`);
    expect(second.writes).toBeLessThanOrEqual(2);
    expect(second.lines).toBeLessThanOrEqual(2 * n);
  }, 180_000);
});
