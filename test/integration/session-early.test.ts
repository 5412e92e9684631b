// The dialer builds its first bags while the handshake runs, before the peer's HELLO,
// with its own codec and caps (docs/protocol.md §2, §6): they are offered as they are
// when the peer's HELLO accepts the same plan, and discarded and built again when it
// does not. Either way every job arrives exactly once and nothing is left behind.

import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { serveLink, syncPeer } from '../../lib/session/index.js';
import { runSession } from '../../lib/session/session.js';
import { createPair } from '../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, payloadOf, session, store, tempDir, type Site } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function bagsOut(site: Site, peer: string, ext: string): string[] {
  const dir = join(site.root, 'bags', 'out', peer);
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(ext)).map((n) => n.slice(0, 64)).sort() : [];
}

function ledgerBags(site: Site, peer: string): string[] {
  return readFileSync(join(site.root, 'ledger', peer), 'utf8').split('\n').slice(1).filter(Boolean).map((l) => l.split(' ')[1]!);
}

/** wait (bounded) until home has built at least one bag for hub */
async function firstBag(home: Site): Promise<string[]> {
  for (let i = 0; i < 250; i++) {
    const bags = bagsOut(home, 'hub', '.bag');
    if (bags.length > 0) return bags;
    await new Promise((r) => setTimeout(r, 20));
  }
  return [];
}

async function world(label: string, n: number): Promise<{ dir: string; hub: Site; home: Site; sent: Map<string, Buffer> }> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  const hub = await makeSite(t.dir, 'hub');
  const home = await makeSite(t.dir, 'home');
  const sizes = Array.from({ length: n }, (_, i) => 400 + ((i * 7919) % 3000));
  const sent = await enqueue(home, 'hub', messages(sizes, 81));
  return { dir: t.dir, hub, home, sent };
}

describe('bags built before the peer HELLO', () => {
  it('are built while the far side is still silent, and offered as they are when its HELLO accepts them', async () => {
    const { hub, home, sent } = await world('early', 30);
    const [a, b] = createPair();
    // home dials; the hub has not started yet, so no HELLO can have arrived
    const homeRun = session(home, 'hub', a, { scanEarly: true });
    const early = await firstBag(home);
    expect(early.length).toBeGreaterThan(0);
    const [rHome] = await Promise.all([homeRun, session(hub, 'home', b)]);
    expect(rHome.sent.jobs).toBe(sent.size);
    expect(ids(hub, 'in', 'home')).toEqual([...sent.keys()].sort());
    for (const [id, p] of sent) expect(payloadOf(hub, 'in', 'home', id).equals(p)).toBe(true);
    // the bags built before HELLO are the ones that crossed, not rebuilt copies
    for (const bag of early) expect(ledgerBags(hub, 'home')).toContain(bag);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(readdirSync(join(home.root, 'bags', 'out', 'hub'))).toEqual([]);
  });

  it('are discarded and built again when the peer HELLO has smaller caps', async () => {
    const { hub, home, sent } = await world('early-caps', 30);
    const [a, b] = createPair();
    const homeRun = session(home, 'hub', a, { scanEarly: true });
    const early = await firstBag(home);
    expect(early.length).toBeGreaterThan(0);
    // a hub that takes at most 4 jobs per bag: the bags home built for its own caps do not fit
    const s = store(hub, 'home');
    await s.open();
    const [rHome] = await Promise.all([
      homeRun,
      runSession({ link: b, store: s, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: { ...CAPS, maxJobs: 4 }, keepaliveMs: 500 }),
    ]);
    expect(rHome.refusedByPeer).toEqual([]);
    expect(rHome.sent.jobs).toBe(sent.size);
    expect(ids(hub, 'in', 'home')).toEqual([...sent.keys()].sort());
    const crossed = ledgerBags(hub, 'home');
    for (const bag of early) expect(crossed).not.toContain(bag);
    expect(crossed.length).toBeGreaterThanOrEqual(Math.ceil(sent.size / 4));
    // nothing left of the discarded bags, no job left queued
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(readdirSync(join(home.root, 'bags', 'out', 'hub'))).toEqual([]);
  });

  it('a job the peer HELLO is too small for fails for good only after the bag being built of it is written (no ENOENT in the bag worker)', async () => {
    const { hub, home, sent } = await world('early-held', 3);
    const big = (await enqueue(home, 'hub', messages([3 * 1024 * 1024], 83))).keys().next().value!;
    const [a, b] = createPair();
    const s = store(home, 'hub');
    await s.open();
    // the bag worker is slow to reach the big job's file (its start-up, 60-120 ms, or the
    // bag before): as in production, the HELLO arrives while that bag is in flight
    let bigStarted!: () => void;
    const started = new Promise<void>((r) => (bigStarted = r));
    let heldDone!: () => void;
    const held = new Promise<void>((r) => (heldDone = r));
    const write = s.writeBagFile.bind(s);
    s.writeBagFile = async (jobs, codec) => {
      if (jobs.some((j) => j.id === big)) {
        bigStarted();
        await Promise.race([held, new Promise((r) => setTimeout(r, 400))]);
      }
      return write(jobs, codec);
    };
    const fail = s.failQueuedJob.bind(s);
    s.failQueuedJob = async (...args) => {
      try {
        return await fail(...args);
      } finally {
        heldDone();
      }
    };
    const homeRun = runSession({ link: a, store: s, site: 'home', peer: 'hub', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, scanEarly: true });
    await started;
    // a hub that takes at most 1 MiB per message: the 3 MiB job is held, failed for good
    const h = store(hub, 'home');
    await h.open();
    const [rHome] = await Promise.all([
      homeRun,
      runSession({ link: b, store: h, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: { ...CAPS, maxJob: 1024 * 1024 }, keepaliveMs: 500 }),
    ]);
    expect(rHome.held).toEqual([big]);
    expect(rHome.sent.jobs).toBe(sent.size);
    expect(ids(hub, 'in', 'home')).toEqual([...sent.keys()].sort());
    expect(ids(home, 'failed', 'hub')).toEqual([big]);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(readdirSync(join(home.root, 'bags', 'out', 'hub'))).toEqual([]);
  });

  it('a bag built before HELLO that the peer plans the same but whose compressed size is over its maxBag is offered and refused like any new bag, not dropped in silence', async () => {
    const { hub, home } = await world('early-maxbag', 0);
    // incompressible: its bag is larger than the hub's 1 MiB cap on a bag's size
    const big = (await enqueue(home, 'hub', [randomBytes(1536 * 1024)])).keys().next().value!;
    const [a, b] = createPair();
    const homeRun = session(home, 'hub', a, { scanEarly: true });
    expect(await firstBag(home)).toHaveLength(1);
    const s = store(hub, 'home');
    await s.open();
    const [rHome] = await Promise.all([
      homeRun,
      runSession({ link: b, store: s, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: { ...CAPS, maxBag: 1024 * 1024 }, keepaliveMs: 500 }),
    ]);
    // the same outcome as a bag built after HELLO: refused as too big, the session not
    // drained, and the job alone in its bag failed for good (the same bytes every time)
    expect(rHome.refusedByPeer.map((r) => r.code)).toEqual(['too-big']);
    expect(rHome.drained).toBe(false);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(ids(home, 'failed', 'hub')).toEqual([big]);
    expect(ids(hub, 'in', 'home')).toEqual([]);
  });

  it('a bag built before HELLO and discarded is gone before a bag of the same bytes is built again (a large job alone in its bag: the same hash)', async () => {
    const { hub, home, sent } = await world('early-same-hash', 6);
    const big = await enqueue(home, 'hub', [randomBytes(1200 * 1024)]);
    const [a, b] = createPair();
    const s = store(home, 'hub');
    await s.open();
    // a slow disk: each discard's directory fsync takes its time
    const discard = s.discardBag.bind(s);
    s.discardBag = async (bag) => {
      await new Promise((r) => setTimeout(r, 300));
      return discard(bag);
    };
    const homeRun = runSession({ link: a, store: s, site: 'home', peer: 'hub', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, scanEarly: true });
    // both bags built before HELLO: the small jobs' and the large job's
    for (let i = 0; i < 250 && bagsOut(home, 'hub', '.jobs').length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(bagsOut(home, 'hub', '.jobs')).toHaveLength(2);
    // a hub that takes 2 jobs per bag: the small jobs are bagged again, and so is the large job, after them
    const h = store(hub, 'home');
    await h.open();
    const [rHome] = await Promise.all([
      homeRun,
      runSession({ link: b, store: h, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: { ...CAPS, maxJobs: 2 }, keepaliveMs: 500 }),
    ]);
    expect(rHome.sent.jobs).toBe(sent.size + big.size);
    expect(ids(hub, 'in', 'home')).toEqual([...sent.keys(), ...big.keys()].sort());
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(readdirSync(join(home.root, 'bags', 'out', 'hub'))).toEqual([]);
  });

  it('are built by sync before the link is up; a link that cannot be made leaves them pending, offered as they are next time', async () => {
    const { dir, hub, home, sent } = await world('early-link', 30);
    writeFileSync(join(dir, 'hub.toml'), `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
    writeFileSync(join(dir, 'home.toml'), `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\n`);
    const homeConfig = loadConfig({ path: join(dir, 'home.toml'), env: {} });
    const hubConfig = loadConfig({ path: join(dir, 'hub.toml'), env: {} });
    // a link that takes its time and then cannot be made: the bags are built meanwhile
    let seen: string[] = [];
    const down = {
      describe: () => 'nowhere',
      connect: async (): Promise<never> => {
        seen = await firstBag(home);
        throw new Error('no route to host');
      },
    };
    await expect(syncPeer({ config: homeConfig, peer: 'hub', transport: down })).rejects.toMatchObject({ code: 'unreachable' });
    expect(seen.length).toBeGreaterThan(0);
    const early = bagsOut(home, 'hub', '.bag');
    expect(early).toEqual(expect.arrayContaining(seen));
    expect(bagsOut(home, 'hub', '.jobs')).toEqual(early);
    expect(ids(home, 'out', 'hub')).toEqual([...sent.keys()].sort());
    // the next sync offers those bags as they are
    const [a, b] = createPair();
    const served = serveLink({ config: hubConfig, peer: 'home', link: b });
    const r = await syncPeer({ config: homeConfig, peer: 'hub', transport: { describe: () => 'pair', connect: async () => a } });
    await served;
    expect(r.sent.jobs).toBe(sent.size);
    expect(ids(hub, 'in', 'home')).toEqual([...sent.keys()].sort());
    for (const bag of early) expect(ledgerBags(hub, 'home')).toContain(bag);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(readdirSync(join(home.root, 'bags', 'out', 'hub'))).toEqual([]);
  });
});
