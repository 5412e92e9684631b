// A peer's HELLO caps say what it accepts; a job over them is refused for good and its
// sender told (docs/spool.md S11). Caps of zero (no job, no byte) come from no mailbag
// (each is at least 1 in the configuration): a peer sending them would have every queued
// job bounced. Such a HELLO is a protocol error: the session ends, the mail stays queued.
import { afterEach, describe, expect, it } from 'vitest';
import { decodeHello, HELLO_LINE } from '../../../lib/session/messages.js';
import { runSession } from '../../../lib/session/session.js';
import { createPair } from '../../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, store, tempDir } from './sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const hello = (over: Record<string, unknown>): Buffer =>
  Buffer.from(`${HELLO_LINE}${JSON.stringify({ site: 'hub', peer: 'home', codecs: ['br'], ...CAPS, keepalive: 15000, ...over })}`);

describe('HELLO caps', () => {
  it.each(['maxBag', 'maxExpanded', 'maxJobs', 'maxJob'])('%s of 0 is refused as a bad HELLO; 1 is taken', (k) => {
    const zero = decodeHello(hello({ [k]: 0 }));
    expect(zero.ok).toBe(false);
    expect(zero.ok ? '' : zero.issue.message).toContain(`HELLO: ${k} `);
    expect(decodeHello(hello({ [k]: 1 })).ok).toBe(true);
  });

  it('a peer whose HELLO says maxJobs 0 ends the session; the queued jobs stay queued, none bounced', async () => {
    const t = tempDir('hello-caps');
    cleanups.push(t.remove);
    const home = await makeSite(t.dir, 'home');
    const hub = await makeSite(t.dir, 'hub');
    const queued = await enqueue(home, 'hub', messages([300, 400, 500]));
    const hs = store(home, 'hub');
    const us = store(hub, 'home');
    await hs.open();
    await us.open();
    const [a, b] = createPair();
    const [h] = await Promise.all([
      runSession({ link: a, store: hs, site: 'home', peer: 'hub', codecs: ['br'], caps: CAPS, keepaliveMs: 500 }).catch((e: unknown) => e),
      runSession({ link: b, store: us, site: 'hub', peer: 'home', codecs: ['br'], caps: { ...CAPS, maxJobs: 0 }, keepaliveMs: 500 }).catch((e: unknown) => e),
    ]);
    expect(h).toBeInstanceOf(Error);
    expect((h as Error).message).toMatch(/maxJobs/);
    expect(ids(home, 'out', 'hub').sort()).toEqual([...queued.keys()].sort());
    expect(ids(home, 'failed', 'hub')).toEqual([]);
    expect(ids(hub, 'in', 'home')).toEqual([]);
  }, 60_000);
});
