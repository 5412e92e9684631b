// Sessions over the in-process pair: both directions in one session, exactly once.

import { afterEach, describe, expect, it } from 'vitest';
import { createPair } from '../../lib/transport/pair.js';
import { enqueue, ids, makeSite, messages, payloadOf, session, tempDir } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('session over the in-process pair', () => {
  it('moves jobs both ways in one session and empties both out queues', async () => {
    const t = tempDir('pair');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const down = await enqueue(hub, 'home', messages([100, 5000, 20000, 2 * 1024 * 1024, 300], 1));
    const up = await enqueue(home, 'hub', messages([700, 12000], 2));
    const [a, b] = createPair();
    const [rHome, rHub] = await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
    expect(rHome.drained).toBe(true);
    expect(rHub.drained).toBe(true);
    expect(ids(home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(ids(hub, 'out', 'home')).toEqual([]);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    for (const [id, p] of down) expect(payloadOf(home, 'in', 'hub', id).equals(p)).toBe(true);
    for (const [id, p] of up) expect(payloadOf(hub, 'in', 'home', id).equals(p)).toBe(true);
    expect(rHome.received.jobs).toBe(5);
    expect(rHome.sent.jobs).toBe(2);
    // the 2 MiB job travelled alone: two bags from the hub
    expect(rHub.sent.bags).toBe(2);
  });
});
