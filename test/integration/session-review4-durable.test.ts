// Review of the receiver-staging change (0aa6785): the ACK now follows the ledger line
// while the bag's jobs are still in bags/in/PEER/HASH.d/ (the moves into in/PEER/ come
// after it). Before the ACK the jobs must be durable *and reachable*: their files synced,
// HASH.d/ synced, and HASH.d/'s own entry in bags/in/PEER/ synced (a directory made with
// mkdir is durable only once its parent is fsynced; without it a power cut after the ACK
// can take HASH.d/ — and the acknowledged jobs the sender then removed — with it).

import { afterEach, describe, expect, it, vi } from 'vitest';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';

const synced: string[] = [];
vi.mock('../../lib/spool/commit.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../lib/spool/commit.js')>();
  return {
    ...real,
    fsyncDir: async (dir: string): Promise<void> => {
      synced.push(dir);
      await real.fsyncDir(dir);
    },
  };
});

const { CAPS, enqueue, makeSite, messages, store, tempDir } = await import('../unit/session/sites.js');

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('the commit point of a small bag (fsyncs, no syncfs)', () => {
  it('has made the entry of HASH.d/ durable in bags/in/PEER/ before commitStaged returns (the ACK follows)', async () => {
    const t = tempDir('review4-durable');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    // fewer than 16 jobs: fsyncs of each file and of HASH.d/, no syncfs of the file system
    const sent = await enqueue(home, 'hub', messages([900, 1200, 700], 33));
    const out = store(home, 'hub');
    await out.open();
    const r = store(hub, 'home');
    await r.open();
    const queued = await out.queuedJobs(new Set());
    const bag = await out.buildBag(queued, 'br');
    const bagsIn = join(hub.root, 'bags', 'in', 'home');
    copyFileSync(join(home.root, 'bags', 'out', 'hub', `${bag.bag}.bag`), join(bagsIn, `${bag.bag}.part`));
    synced.length = 0;
    const st = await r.stageBag(bag.bag, 'br', CAPS);
    const c = await r.commitStaged(st);
    expect(c.committed.sort()).toEqual([...sent.keys()].sort());
    // here the session sends ACK and the sender removes the jobs: they are only in HASH.d/
    expect(synced).toContain(join(bagsIn, `${bag.bag}.d`));
    expect(synced).toContain(bagsIn);
    await r.moveCommitted(bag.bag);
  });

  it('syncs HASH.d/ after the moves, before removing it (a power cut must not bring a moved job back into it)', async () => {
    const t = tempDir('review4-durable-move');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    await enqueue(home, 'hub', messages([800, 1000], 34));
    const out = store(home, 'hub');
    await out.open();
    const r = store(hub, 'home');
    await r.open();
    const bag = await out.buildBag(await out.queuedJobs(new Set()), 'br');
    const bagsIn = join(hub.root, 'bags', 'in', 'home');
    copyFileSync(join(home.root, 'bags', 'out', 'hub', `${bag.bag}.bag`), join(bagsIn, `${bag.bag}.part`));
    await r.commitStaged(await r.stageBag(bag.bag, 'br', CAPS));
    synced.length = 0;
    await r.moveCommitted(bag.bag);
    // the emptied HASH.d/ and in/PEER/ are both synced by the move
    expect(synced).toContain(join(bagsIn, `${bag.bag}.d`));
    expect(synced).toContain(join(hub.root, 'in', 'home'));
  });
});
