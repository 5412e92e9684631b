// The receiver stages several bags at once and commits them one at a time
// (docs/protocol.md §5): a job in two bags staged together is committed once, a staged
// bag that was never committed leaves nothing behind, and sessions with many bags both
// ways deliver every job exactly once.

import { afterEach, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPair } from '../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, payloadOf, session, store, tempDir, type Site } from '../unit/session/sites.js';
import type { SessionStore } from '../../lib/session/store.js';
import { runSession, type SessionResult } from '../../lib/session/session.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** build a bag of these queued jobs at `from` and hand it to `to` as a complete partial */
async function bagOver(from: SessionStore, fromSite: Site, toSite: Site, jobIds: string[]): Promise<string> {
  const queued = (await from.queuedJobs(new Set())).filter((j) => jobIds.includes(j.id));
  const bag = await from.buildBag(queued, 'br');
  copyFileSync(join(fromSite.root, 'bags', 'out', toSite.name, `${bag.bag}.bag`), join(toSite.root, 'bags', 'in', fromSite.name, `${bag.bag}.part`));
  return bag.bag;
}

function ledgerLines(site: Site, peer: string): string[] {
  return readFileSync(join(site.root, 'ledger', peer), 'utf8').split('\n').slice(1).filter(Boolean);
}

describe('receiver: bags staged at once, committed one at a time', () => {
  it('commits a job that two bags staged together carry only once', async () => {
    const t = tempDir('stage2');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const sent = await enqueue(home, 'hub', messages([900, 1200, 700], 71));
    const [x, y, z] = [...sent.keys()] as [string, string, string];
    const out = store(home, 'hub');
    await out.open();
    const r = store(hub, 'home');
    await r.open();
    // the sender rebagged after a lost acknowledgement: x travels in both bags
    const a = await bagOver(out, home, hub, [x, y]);
    const b = await bagOver(out, home, hub, [x, z]);
    const [sa, sb] = await Promise.all([r.stageBag(a, 'br', CAPS), r.stageBag(b, 'br', CAPS)]);
    // both read x before either committed
    expect(sa.committed).toContain(x);
    expect(sb.committed).toContain(x);
    const ra = await r.finishCommit(sa);
    const rb = await r.finishCommit(sb);
    expect(ra).toMatchObject({ committed: [x, y].sort(), duplicates: 0 });
    expect(rb).toMatchObject({ committed: [z], duplicates: 1 });
    expect(rb.bytes).toBe(sb.sizes.get(z));
    expect(ids(hub, 'in', 'home')).toEqual([x, y, z].sort());
    for (const id of [x, y, z]) expect(payloadOf(hub, 'in', 'home', id).equals(sent.get(id)!)).toBe(true);
    const jobsInLedger = ledgerLines(hub, 'home').flatMap((l) => l.split(' ')[2]!.split(','));
    expect(jobsInLedger.sort()).toEqual([x, y, z].sort());
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home'))).toEqual([]);
  });

  it('leaves nothing of a bag staged but never committed once the store is opened again', async () => {
    const t = tempDir('stage-drop');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const sent = await enqueue(home, 'hub', messages([900, 1200], 72));
    const out = store(home, 'hub');
    await out.open();
    const r = store(hub, 'home');
    await r.open();
    const a = await bagOver(out, home, hub, [...sent.keys()]);
    const staged = await r.stageBag(a, 'br', CAPS);
    expect(existsSync(staged.staging)).toBe(true);
    // as after a crash between staging and the ledger line
    const again = store(hub, 'home');
    await again.open();
    expect(existsSync(staged.staging)).toBe(false);
    expect(ids(hub, 'in', 'home')).toEqual([]);
    expect(again.hasBag(a)).toBe(false);
    // the partial is kept: the bag is committed when offered again
    const r2 = await again.commitBag(a, 'br', CAPS);
    expect(r2.committed.sort()).toEqual([...sent.keys()].sort());
  });

  it('moves many bags both ways in one session, every job once', async () => {
    const t = tempDir('many-bags');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const mib = 1024 * 1024;
    // four large jobs travel alone, the small ones share bags: five or more bags each way
    const up = await enqueue(home, 'hub', messages([1.1 * mib, 1.3 * mib, 1.2 * mib, 1.05 * mib, ...Array.from({ length: 40 }, (_, i) => 3000 + 97 * i)].map(Math.floor), 73));
    const down = await enqueue(hub, 'home', messages([1.15 * mib, 1.25 * mib, 1.02 * mib, 1.4 * mib, ...Array.from({ length: 30 }, (_, i) => 5000 + 31 * i)].map(Math.floor), 74));
    const [l1, l2] = createPair();
    const [rHome, rHub] = await Promise.all([session(home, 'hub', l1), session(hub, 'home', l2)]);
    expect(rHome.drained && rHub.drained).toBe(true);
    expect(rHome.sent.bags).toBeGreaterThanOrEqual(5);
    expect(rHub.sent.bags).toBeGreaterThanOrEqual(5);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(ids(home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(ids(hub, 'out', 'home')).toEqual([]);
    for (const [id, p] of up) expect(payloadOf(hub, 'in', 'home', id).equals(p)).toBe(true);
    for (const [id, p] of down) expect(payloadOf(home, 'in', 'hub', id).equals(p)).toBe(true);
    expect(rHub.received).toMatchObject({ jobs: up.size, duplicates: 0 });
    expect(rHome.received).toMatchObject({ jobs: down.size, duplicates: 0 });
  });
});

describe('what follows an acknowledgement does not hold the session up, but its result waits for it', () => {
  /** a home and a hub store whose moves (hub) and removals (home) each take `ms` longer */
  async function slowTails(label: string, ms: number, failMove = false): Promise<{ home: Site; hub: Site; up: Map<string, Buffer>; lines: string[]; run: () => Promise<[PromiseSettledResult<SessionResult>, PromiseSettledResult<SessionResult>]> }> {
    const t = tempDir(label);
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const up = await enqueue(home, 'hub', messages(Array.from({ length: 30 }, (_, i) => 2000 + 50 * i), 75));
    const sHome = store(home, 'hub');
    await sHome.open();
    const sHub = store(hub, 'home');
    await sHub.open();
    const lines: string[] = [];
    const acked = sHome.acked.bind(sHome);
    sHome.acked = async (bag) => {
      await new Promise((r) => setTimeout(r, ms));
      const n = await acked(bag);
      lines.push(`home removed ${n}`);
      return n;
    };
    const moved = sHub.moveCommitted.bind(sHub);
    sHub.moveCommitted = async (bag) => {
      await new Promise((r) => setTimeout(r, ms));
      if (failMove) throw new Error('moving failed on purpose');
      await moved(bag);
      lines.push('hub moved');
    };
    const trace = (l: string): void => void (/> (BYE|ACK)/.test(l) ? lines.push(l.replace(/ \{.*/, '').trim()) : undefined);
    const [a, b] = createPair();
    const run = (): Promise<[PromiseSettledResult<SessionResult>, PromiseSettledResult<SessionResult>]> =>
      Promise.allSettled([
        runSession({ link: a, store: sHome, site: 'home', peer: 'hub', codecs: ['br'], caps: CAPS, trace }),
        runSession({ link: b, store: sHub, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, trace }),
      ]) as Promise<[PromiseSettledResult<SessionResult>, PromiseSettledResult<SessionResult>]>;
    return { home, hub, up, lines, run };
  }

  it('ACK follows the ledger line and BYE the ACKs, before the moves and removals; both results come after them', async () => {
    const w = await slowTails('tails', 400);
    const [rHome, rHub] = await w.run();
    expect(rHome.status).toBe('fulfilled');
    expect(rHub.status).toBe('fulfilled');
    // both BYEs went out before the slow moves and removals were done
    const byes = w.lines.filter((l) => l.endsWith('> BYE')).map((l) => w.lines.indexOf(l));
    expect(byes).toHaveLength(2);
    const firstTail = w.lines.findIndex((l) => l.startsWith('home removed') || l === 'hub moved');
    expect(firstTail).toBeGreaterThan(Math.max(...byes));
    expect(w.lines.indexOf('hub > ACK')).toBeLessThan(w.lines.indexOf('hub > BYE'));
    // and yet when the results came, everything was in place
    const r = (rHome as PromiseFulfilledResult<SessionResult>).value;
    expect(r.sent.jobs).toBe(w.up.size);
    expect(ids(w.home, 'out', 'hub')).toEqual([]);
    expect(ids(w.hub, 'in', 'home')).toEqual([...w.up.keys()].sort());
    expect(readdirSync(join(w.hub.root, 'bags', 'in', 'home'))).toEqual([]);
    expect(readdirSync(join(w.home.root, 'bags', 'out', 'hub'))).toEqual([]);
  });

  it('a move that fails after BYE fails that side\'s session; the recovery finishes the move', async () => {
    const w = await slowTails('tail-fails', 100, true);
    const [rHome, rHub] = await w.run();
    expect(rHome.status).toBe('fulfilled');
    expect(rHub.status).toBe('rejected');
    expect(String((rHub as PromiseRejectedResult).reason)).toMatch(/moving failed on purpose/);
    // committed (ledger line) and acknowledged: home removed the jobs; the hub's next open moves them
    expect(ids(w.home, 'out', 'hub')).toEqual([]);
    expect(ids(w.hub, 'in', 'home')).toEqual([]);
    await store(w.hub, 'home').open();
    expect(ids(w.hub, 'in', 'home')).toEqual([...w.up.keys()].sort());
  });
});
