// mailbag dispatch: which peers are due (work queued, or the poll interval passed), and
// two dispatchers (or a dispatch and a sync) at the same time never both take the same
// mail: the per-peer session lock lets one run and the other skip.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import type { Config } from '../../lib/config/types.js';
import { dispatchPeers, peersDue, serveLink } from '../../lib/session/index.js';
import { pairTransport } from '../../lib/transport/pair.js';
import { enqueue, ids, makeSite, messages, tempDir, type Site } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function setup(): Promise<{ hub: Site; home: Site; hubConfig: Config; homeConfig: Config; served: { n: number } }> {
  const t = tempDir('dispatch');
  cleanups.push(t.remove);
  const hub = await makeSite(t.dir, 'hub');
  const home = await makeSite(t.dir, 'home');
  writeFileSync(join(t.dir, 'hub.toml'), `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
  writeFileSync(
    join(t.dir, 'home.toml'),
    `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\npoll = "1h"\n[peers.backup]\nhost = "127.0.0.2"\npoll = "1h"\n[peers.quiet]\n`,
  );
  return {
    hub,
    home,
    hubConfig: loadConfig({ path: join(t.dir, 'hub.toml'), env: {} }),
    homeConfig: loadConfig({ path: join(t.dir, 'home.toml'), env: {} }),
    served: { n: 0 },
  };
}

describe('dispatch', () => {
  it('dials peers with work queued, and peers whose poll interval has passed', async () => {
    const s = await setup();
    // never synced: both are due by their poll; quiet has no host (it dials us)
    expect(await peersDue(s.homeConfig, s.home.spool)).toEqual([{ peer: 'backup', why: 'poll' }, { peer: 'hub', why: 'poll' }]);
    await enqueue(s.home, 'backup', messages([100], 30));
    expect(await peersDue(s.homeConfig, s.home.spool)).toEqual([{ peer: 'backup', why: 'queued' }, { peer: 'hub', why: 'poll' }]);
  });

  it('two dispatchers at once: one session runs, the other skips the locked peer; every job crosses once', async () => {
    const s = await setup();
    const down = await enqueue(s.hub, 'home', messages([1000, 2000, 3000], 31));
    const up = await enqueue(s.home, 'hub', messages([1500], 32));
    const transport = pairTransport((far) => {
      s.served.n++;
      void serveLink({ config: s.hubConfig, peer: 'home', link: far }).catch(() => undefined);
    });
    const config = { ...s.homeConfig, peers: { hub: s.homeConfig.peers.hub! } };
    const [one, two] = await Promise.all([
      dispatchPeers({ config, transports: { hub: transport } }),
      dispatchPeers({ config, transports: { hub: transport } }),
    ]);
    const all = [...one, ...two];
    expect(all.filter((e) => e.result)).toHaveLength(1);
    expect(all.filter((e) => e.skipped)).toHaveLength(1);
    expect(all.find((e) => e.skipped)!.skipped).toMatch(/another session with hub/);
    expect(ids(s.home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(s.hub, 'in', 'home')).toEqual([...up.keys()].sort());
    // after the session the hub is not due again until its poll interval passes
    expect(await peersDue(config, s.home.spool)).toEqual([]);
    expect(await peersDue(config, s.home.spool, Date.now() + 2 * 3600_000)).toEqual([{ peer: 'hub', why: 'poll' }]);
  });
});
