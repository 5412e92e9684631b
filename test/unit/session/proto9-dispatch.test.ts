// proto9 (session 9): `mailbag dispatch` polls a peer once its `poll` interval has passed
// since bags/PEER.last. A clock that was ahead when that file was written (a board with no
// RTC that booted in the future, then NTP stepped it back) left a time in the future, and
// the peer was never due again until the clock caught up — days or years of no polling.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../lib/config/index.js';
import { peersDue } from '../../../lib/session/index.js';
import { makeSite, tempDir } from './sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('dispatch polls by bags/PEER.last', () => {
  it('a last session in the future (the clock was set back since) makes the peer due, not never due', async () => {
    const t = tempDir('p9-poll');
    cleanups.push(t.remove);
    const home = await makeSite(t.dir, 'home');
    const toml = join(t.dir, 'home.toml');
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\ntransport = "command"\ncommand = ["true"]\npoll = "1h"\n`);
    const config = loadConfig({ path: toml, env: {}, cwd: t.dir });
    const now = Date.parse('2026-11-23T02:00:00Z');
    mkdirSync(home.spool.path('bags'), { recursive: true });
    const last = (iso: string): void => writeFileSync(home.spool.path('bags', 'hub.last'), `${iso}\n`);
    last('2026-11-23T01:30:00Z');
    expect(await peersDue(config, home.spool, now)).toEqual([]);
    last('2026-11-23T00:59:59Z');
    expect(await peersDue(config, home.spool, now)).toEqual([{ peer: 'hub', why: 'poll' }]);
    // written while the clock said 2027
    last('2027-03-01T10:00:00Z');
    expect(await peersDue(config, home.spool, now)).toEqual([{ peer: 'hub', why: 'poll' }]);
  });
});
