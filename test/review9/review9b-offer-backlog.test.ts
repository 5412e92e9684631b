// review9b: the offer window (c54a88f) with a real backlog. A receiver whose caps put one
// job in a bag (max_jobs_per_bag = 1) turns N queued jobs into N bags: more than the
// sender's window of 1,000 must all cross in one session, and more than 1,000 pending bags
// left by a session that broke must drain at the next one.

import { afterEach, describe, expect, it } from 'vitest';
import { FRAME, FrameDecoder } from '../../lib/session/frame.js';
import { encodeError, encodeHello } from '../../lib/session/messages.js';
import { OFFER_WINDOW } from '../../lib/session/state.js';
import { createPair } from '../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, session, tempDir, type Site } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function site(label: string, name: string): Promise<Site> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  return makeSite(t.dir, name);
}

const ONE_JOB_BAGS = { ...CAPS, maxJobs: 1 };
const N = OFFER_WINDOW + 700;

describe('a backlog of more bags than the offer window', () => {
  it(`${N} one-job bags all cross in one session, never more than ${OFFER_WINDOW} offered and open`, async () => {
    const home = await site('r9b-window', 'home');
    const hub = await site('r9b-window', 'hub');
    const up = await enqueue(home, 'hub', messages(Array.from({ length: N }, () => 200), 7));
    const [a, b] = createPair();
    let open = 0;
    let most = 0;
    const trace = (l: string): void => {
      if (/^home > OFFER /.test(l)) most = Math.max(most, ++open);
      if (/^home < (ACK|REFUSE) /.test(l) || /^home < ANSWER .*"have"/.test(l)) open--;
    };
    const [r] = await Promise.all([session(home, 'hub', a, { trace }), session(hub, 'home', b, { caps: ONE_JOB_BAGS })]);
    expect(r.sent.bags).toBe(N);
    expect(r.drained).toBe(true);
    // built one at a time, they are offered about as fast as they cross: the window may not fill
    expect(most).toBeLessThanOrEqual(OFFER_WINDOW);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(ids(home, 'out', 'hub')).toEqual([]);
  }, 300_000);

  it(`${N} pending bags left by a session that broke drain at the next session`, async () => {
    const home = await site('r9b-pending', 'home');
    const hub = await site('r9b-pending', 'hub');
    const up = await enqueue(home, 'hub', messages(Array.from({ length: N }, () => 200), 8));
    // session 1: a hub that reads one-job bags, answers no offer, and ends with ERROR once
    // the window is full (every bag is built and pending by then or while the session ends)
    const [a, b] = createPair();
    const dec = new FrameDecoder();
    let offers = 0;
    b.input.on('data', (c: Buffer) => {
      const r = dec.push(c);
      if (!r.ok) return;
      for (const f of r.value) if (f.type === FRAME.OFFER && ++offers === OFFER_WINDOW) {
        setTimeout(() => {
          b.output.write(encodeError({ code: 'internal', message: 'going away' }));
          b.output.end();
        }, 200);
      }
    });
    b.output.write(encodeHello({ site: 'hub', peer: 'home', codecs: ['br', 'gzip', 'none'], ...ONE_JOB_BAGS, keepalive: 500, software: 'fake', progress: true }));
    const first = await session(home, 'hub', a).then(() => undefined, (e: Error) => e);
    expect(first).toBeInstanceOf(Error);
    expect(offers).toBe(OFFER_WINDOW);
    // session 2 with the real hub: the pending bags are offered at once, up to the window
    let open = 0;
    let most = 0;
    const trace = (l: string): void => {
      if (/^home > OFFER /.test(l)) most = Math.max(most, ++open);
      if (/^home < (ACK|REFUSE) /.test(l) || /^home < ANSWER .*"have"/.test(l)) open--;
    };
    const [c, d] = createPair();
    const [r] = await Promise.all([session(home, 'hub', c, { trace }), session(hub, 'home', d, { caps: ONE_JOB_BAGS })]);
    expect(r.drained).toBe(true);
    expect(most).toBe(OFFER_WINDOW);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(ids(home, 'out', 'hub')).toEqual([]);
  }, 300_000);
});
