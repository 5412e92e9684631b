// review9b: c54a88f's receiver cap (more than MAX_OPEN_OFFERS = 10,000 offers open: ERROR
// protocol) against a sender of the previous build, which offered every bag at once (no
// window: offerWindow Infinity here is that build's offering). A sender with more than
// 10,000 pending bags (a receiver whose caps make one-job bags, a session that broke after
// they were built) offers them all at the start of every session: each session is ended
// before a bag crosses, and the backlog never drains (seen: in/ after three sessions 0, 0, 0;
// with the REFUSE busy of req-review9b: 10,000, then 10,200).

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../lib/session/frame.js';
import { encodeError, encodeHello } from '../../lib/session/messages.js';
import { MAX_OPEN_OFFERS } from '../../lib/session/state.js';
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
const N = MAX_OPEN_OFFERS + 200;

describe('a previous-build sender with more pending bags than the receiver keeps open', () => {
  it(`${N} pending bags still cross over a few sessions`, async () => {
    const home = await site('r9b-old', 'home');
    const hub = await site('r9b-old', 'hub');
    const up = await enqueue(home, 'hub', messages(Array.from({ length: N }, () => 100), 9));
    // session 1: a hub reading one-job bags that answers nothing; it ends once every bag is built
    const [a, b] = createPair();
    const dec = new FrameDecoder();
    b.input.on('data', (c: Buffer) => void dec.push(c));
    b.output.write(encodeHello({ site: 'hub', peer: 'home', codecs: ['br', 'gzip', 'none'], ...ONE_JOB_BAGS, keepalive: 500, software: 'fake', progress: true }));
    const bagsDir = join(home.root, 'bags', 'out', 'hub');
    const watch = setInterval(() => {
      const n = readdirSync(bagsDir).filter((f) => /^[0-9a-f]{64}\.bag$/.test(f)).length;
      if (n >= N) {
        clearInterval(watch);
        b.output.write(encodeError({ code: 'internal', message: 'going away' }));
        b.output.end();
      }
    }, 200);
    cleanups.push(() => clearInterval(watch));
    await session(home, 'hub', a, { keepaliveMs: 60_000 }).catch(() => undefined);
    const pending = readdirSync(bagsDir).filter((f) => /^[0-9a-f]{64}\.bag$/.test(f)).length;
    expect(pending).toBeGreaterThan(MAX_OPEN_OFFERS);
    const crossed: number[] = [];
    for (let s = 0; s < 3 && ids(home, 'out', 'hub').length > 0; s++) {
      const [c, d] = createPair({ highWaterMark: 1024 * 1024 });
      await Promise.allSettled([session(home, 'hub', c, { offerWindow: Number.POSITIVE_INFINITY }), session(hub, 'home', d, { caps: ONE_JOB_BAGS })]);
      crossed.push(ids(hub, 'in', 'home').length);
    }
    expect({ crossed: crossed.at(-1), pending }).toEqual({ crossed: up.size, pending });
  }, 600_000);
});
