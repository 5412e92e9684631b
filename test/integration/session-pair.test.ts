// Sessions over the in-process pair: both directions in one session, exactly once.

import { afterEach, describe, expect, it } from 'vitest';
import { createPair } from '../../lib/transport/pair.js';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { newJobId } from '../../lib/job/id.js';
import { runSession } from '../../lib/session/session.js';
import { CAPS, enqueue, ids, makeSite, messages, payloadOf, session, store, tempDir } from '../unit/session/sites.js';

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

describe('a job the peer refuses for good', () => {
  it('goes to failed/ with the reason; the other jobs of its bag cross in the next session', async () => {
    const t = tempDir('refused');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const before = await enqueue(home, 'hub', messages([500], 51));
    const rnews = newJobId();
    await home.spool.writeJob('out', 'hub', { id: rnews, from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rnews', args: [], sender: '', recipients: [] }, Buffer.from('news'));
    const after = await enqueue(home, 'hub', messages([700], 52));
    const hubSide = async (link: Parameters<typeof session>[2]) => {
      const s = store(hub, 'home', { accept: ['rmail'] });
      await s.open();
      return runSession({ link, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 500 });
    };
    const [a, b] = createPair();
    const [first] = await Promise.all([session(home, 'hub', a), hubSide(b)]);
    expect(first.drained).toBe(false);
    expect(first.refusedByPeer).toHaveLength(1);
    expect(first.refusedByPeer[0]).toMatchObject({ code: 'forbidden-command', job: rnews });
    expect(ids(home, 'failed', 'hub')).toEqual([rnews]);
    expect(readFileSync(join(home.root, 'run', 'hub', rnews), 'utf8')).toMatch(/command rnews is not accepted/);
    expect(ids(hub, 'in', 'home')).toEqual([]);
    const [c, d] = createPair();
    const [second] = await Promise.all([session(home, 'hub', c), hubSide(d)]);
    expect(second.drained).toBe(true);
    expect(ids(hub, 'in', 'home')).toEqual([...before.keys(), ...after.keys()].sort());
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(existsSync(join(hub.root, 'in', 'home', rnews))).toBe(false);
  });
});

describe('a dead link', () => {
  it('is noticed by the idle timeout when the far side goes silent; the jobs stay queued', async () => {
    const t = tempDir('silent');
    cleanups.push(t.remove);
    const home = await makeSite(t.dir, 'home');
    const queued = await enqueue(home, 'hub', messages([500], 53));
    // the far end is connected but never says anything (a half-dead TCP connection)
    const [a, b] = createPair();
    b.input.resume();
    const started = Date.now();
    await expect(session(home, 'hub', a, { keepaliveMs: 200, idleTimeoutMs: 1000 })).rejects.toMatchObject({ code: 'timeout', message: expect.stringMatching(/nothing received from hub/) });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(ids(home, 'out', 'hub')).toEqual([...queued.keys()]);
  });

  it('keeps a slow but live session alive with PINGs', async () => {
    const t = tempDir('pings');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const up = await enqueue(home, 'hub', messages([500], 54));
    const [a, b] = createPair();
    // the hub takes 2.5 s to commit the bag, well past home's 1 s idle timeout: only its PINGs say it is alive
    const s = store(hub, 'home');
    await s.open();
    const commit = s.commitStaged.bind(s);
    s.commitStaged = async (...args) => {
      await new Promise((r) => setTimeout(r, 2500));
      return commit(...args);
    };
    const [r] = await Promise.all([
      session(home, 'hub', a, { keepaliveMs: 200, idleTimeoutMs: 1000 }),
      runSession({ link: b, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000 }),
    ]);
    expect(r.sent.jobs).toBe(1);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()]);
  });
});

describe('a link that dies while a write is pending', () => {
  it('ends the session (it does not wait for a write callback that never comes)', async () => {
    const t = tempDir('stuck-write');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    // incompressible: the bag is as large as the job, so its DATA passes the half-way point
    const queued = await enqueue(home, 'hub', [randomBytes(600 * 1024)]);
    const [a, b] = createPair();
    // a transport whose flush callbacks never fire (as an SSH channel torn down mid-write)
    const write = a.output.write.bind(a.output) as (chunk: unknown, ...rest: unknown[]) => boolean;
    let cut = false;
    (a.output as { write: unknown }).write = (chunk: Buffer, ...rest: unknown[]) => {
      if (chunk.length > 0) return write(chunk, ...rest);
      // the flush half-way through the bag: its callback is dropped, then the line dies
      if (!cut) setTimeout(() => b.abort(new Error('line cut')), 50);
      cut = true;
      return write(chunk);
    };
    const started = Date.now();
    const [rHome] = await Promise.allSettled([
      session(home, 'hub', a, { keepaliveMs: 200, idleTimeoutMs: 1000 }),
      session(hub, 'home', b, { keepaliveMs: 200, idleTimeoutMs: 1000 }),
    ]);
    expect(rHome.status).toBe('rejected');
    expect(Date.now() - started).toBeLessThan(15_000);
    // nothing acknowledged: the job is still queued
    expect(ids(home, 'out', 'hub')).toEqual([...queued.keys()]);
  }, 30_000);
});
