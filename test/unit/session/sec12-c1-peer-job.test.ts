// sec12: what the receiver's refusal of a C1 control in a job header (lib/job/header.ts,
// sec12-header-c1) does to that job on the sending side, with two real spools and the
// real staging: an older mailbag on home queued a job whose recipient holds CSI (U+009B)
// (its encoder took C1), and home now offers it to an upgraded hub. hub refuses the bag
// bad-job (naming the entry in its words, no job in the REFUSE); the session12 change (83e5304) in
// lib/session (a bag refused as a whole: its jobs go alone from the next session on) makes
// that job fail visibly on home and the others cross. At 3aba050 (before it) the same bag
// was refused at every session and none of its three jobs ever crossed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPair } from '../../../lib/transport/pair.js';
import { enqueue, ids, makeSite, messages, session, tempDir, type Site } from './sites.js';

let hub: Site;
let home: Site;
const cleanups: (() => void)[] = [];
beforeEach(async () => {
  const t = tempDir('sec12-c1-peer');
  cleanups.push(t.remove);
  hub = await makeSite(t.dir, 'hub');
  home = await makeSite(t.dir, 'home');
});
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function syncOnce(): Promise<[Awaited<ReturnType<typeof session>>, Awaited<ReturnType<typeof session>>]> {
  const [a, b] = createPair();
  const [h, f] = await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
  return [h, f];
}

describe('sec12: a queued job with a C1 control in its header, offered to a peer', () => {
  it('is refused by the peer, fails visibly on the sending side, and the others cross', async () => {
    const jobs = [...(await enqueue(home, 'hub', messages([900, 1400, 2100], 7))).keys()];
    const poison = jobs[1]!;
    // as an older mailbag wrote it: the same header with a C1 control in the recipient
    const path = home.spool.path('out', 'hub', poison);
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.replace('"recipients":["user@example.org"]', '"recipients":["user\u009b2J@example.org"]'));
    expect(readFileSync(path, 'utf8')).toContain('user\u009b2J@example.org');
    let sessions = 0;
    for (; sessions < 3 && ids(home, 'out', 'hub').length > 0; sessions++) {
      const [h, f] = await syncOnce();
      // visible at every session that offers it: the peer's refusal, with its reason
      expect(h.refusedByPeer.map((r) => r.code)).toEqual(['bad-job']);
      expect(h.refusedByPeer[0]!.message).toMatch(/recipients\[0\] contains a control character \(U\+009B\)/);
      expect(f.refusedByUs.map((r) => r.code)).toEqual(['bad-job']);
    }
    expect(ids(hub, 'in', 'home')).toEqual(jobs.filter((j) => j !== poison).sort());
    expect(ids(hub, 'in', 'home')).not.toContain(poison);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    expect(ids(home, 'failed', 'hub')).toEqual([poison]);
    // failed for good with the peer's words (mailbag failed shows it)
    expect(readFileSync(join(home.root, 'run', 'hub', poison), 'utf8')).toMatch(/control character \(U\+009B\).*bad-job/);
  });
});
