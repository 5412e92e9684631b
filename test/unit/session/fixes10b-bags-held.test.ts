// What a session keeps of each bag it received (DESIGN.md promise 7, bounded memory): a
// long session with many bags must not hold every one of them until it ends. Home sends
// hub N single-job bags (hub's maxJobs = 1); while the session still runs, after most
// bags have been committed and acknowledged, a full collection must find the record of
// each of those bags (its StagedBag: the job ids, their sizes, the staging path) gone.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, expect, it } from 'vitest';
import { runSession, type SessionResult } from '../../../lib/session/session.js';
import type { StagedBag } from '../../../lib/session/store.js';
import { createPair } from '../../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, store, tempDir } from './sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

it('a session of many bags keeps nothing of a bag once it is acknowledged', async () => {
  const N = 600;
  const t = tempDir('f10b-held');
  cleanups.push(t.remove);
  const home = await makeSite(t.dir, 'home');
  const hub = await makeSite(t.dir, 'hub');
  await enqueue(home, 'hub', messages(new Array<number>(N).fill(200)));
  const hs = store(home, 'hub');
  const us = store(hub, 'home');
  await hs.open();
  await us.open();
  const refs: WeakRef<StagedBag>[] = [];
  const begin = us.beginStage.bind(us);
  us.beginStage = (...a) => {
    const st = begin(...a);
    st.done.then((v) => refs.push(new WeakRef(v)), () => {});
    return st;
  };
  const gc = fullGc();
  let alive: number | undefined;
  let committed = 0;
  let latest = 0;
  let checked: Promise<void> | undefined;
  const [a, b] = createPair();
  const hubRun = runSession({
    link: b, store: us, site: 'hub', peer: 'home', codecs: ['br'], caps: { ...CAPS, maxJobs: 1 }, keepaliveMs: 500,
    onProgress: (p) => {
      latest = p.receivedJobs;
      // most bags in, the session still open: what is left of the committed ones?
      if (checked || p.receivedJobs < N - 100) return;
      checked = new Promise<void>((r) => setImmediate(() => {
        gc();
        committed = latest;
        // staged (done) and not yet committed: in flight, held by right
        alive = refs.filter((w) => w.deref() !== undefined).length - (refs.length - committed);
        r();
      }));
    },
  });
  const homeRun = runSession({ link: a, store: hs, site: 'home', peer: 'hub', codecs: ['br'], caps: CAPS, keepaliveMs: 500, scanEarly: true });
  const [h, u]: [SessionResult, SessionResult] = await Promise.all([homeRun, hubRun]);
  await checked;
  expect(h.sent.jobs).toBe(N);
  expect(u.received.bags).toBe(N);
  expect(ids(hub, 'in', 'home')).toHaveLength(N);
  expect(refs.length).toBeGreaterThanOrEqual(N - 100);
  // of the bags committed and acknowledged, a few (the one being resolved) may be held
  // still; not the hundreds done
  expect(committed).toBeGreaterThanOrEqual(N - 100);
  expect(alive).toBeLessThan(20);
}, 120_000);
