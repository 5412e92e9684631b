// Sessions over real SSH: ssh2's embedded server (the fast suite) and a real OpenSSH
// sshd on 127.0.0.1 whose authorized_keys forces `node dist/bin/mailbag.js serve --peer
// home` — exactly the production setup. Over the real sshd also through a proxy that
// cuts the TCP connection at random offsets: every job still arrives exactly once.

import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import type { Config } from '../../lib/config/types.js';
import { serveLink, syncPeer } from '../../lib/session/index.js';
import { startSshServer } from '../../lib/transport/server.js';
import { startCutProxy } from '../helpers/cut-proxy.js';
import { need } from '../helpers/need.js';
import { makeKey } from '../helpers/ssh-keys.js';
import { haveSshd, startSshd } from '../helpers/sshd.js';
import { enqueue, ids, makeSite, messages, payloadOf, soundKeyPair, tempDir, type Site } from '../unit/session/sites.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin', 'mailbag.js');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function configs(dir: string, hub: Site, home: Site, port: number, identity: string, knownHosts: string): { hubFile: string; hubConfig: Config; homeConfig: Config } {
  const hubFile = join(dir, 'hub.toml');
  writeFileSync(hubFile, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\naccept = ["rmail"]\n`);
  const homeFile = join(dir, 'home.toml');
  writeFileSync(
    homeFile,
    `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${port}\nuser = ${JSON.stringify(process.env.USER ?? 'root')}\n` +
      `identity = ${JSON.stringify(identity)}\nknown_hosts = ${JSON.stringify(knownHosts)}\nkeepalive = "2s"\nconnect_timeout = "10s"\n`,
  );
  return { hubFile, hubConfig: loadConfig({ path: hubFile, env: {} }), homeConfig: loadConfig({ path: homeFile, env: {} }) };
}

async function twoSites(label: string): Promise<{ dir: string; hub: Site; home: Site }> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  return { dir: t.dir, hub: await makeSite(t.dir, 'hub'), home: await makeSite(t.dir, 'home') };
}

describe('session over ssh2\'s embedded SSH server', () => {
  it('syncs both ways through an exec channel whose identity comes from the key', async () => {
    const { dir, hub, home } = await twoSites('ssh2');
    const key = soundKeyPair('home');
    const keyFile = join(dir, 'id_home');
    writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
    const hubSide: { config?: Config } = {};
    const server = await startSshServer({
      hostKeys: [soundKeyPair('hub-host').privateKey],
      authorizedKeys: [{ key: key.publicKey, peer: 'home' }],
      onExec: async ({ peer, link }) => {
        await serveLink({ config: hubSide.config!, peer, link });
        return 0;
      },
    });
    cleanups.push(() => server.close());
    const kh = join(dir, 'known_hosts');
    writeFileSync(kh, `${server.knownHostsLine}\n`);
    const c = configs(dir, hub, home, server.port, keyFile, kh);
    hubSide.config = c.hubConfig;
    const down = await enqueue(hub, 'home', messages([500, 8000, 30000, 1_200_000], 11));
    const up = await enqueue(home, 'hub', messages([700, 900], 12));
    const r = await syncPeer({ config: c.homeConfig, peer: 'hub' });
    expect(r.drained).toBe(true);
    expect(r.received.jobs).toBe(4);
    expect(r.sent.jobs).toBe(2);
    expect(ids(home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    for (const [id, p] of down) expect(payloadOf(home, 'in', 'hub', id).equals(p)).toBe(true);
  });
});

const haveAll = haveSshd() && need('the built mailbag', [bin], 'run npm run build first (npm test does)');

describe.skipIf(!haveAll)('session over a real OpenSSH sshd with a forced command', () => {
  async function setup(label: string): Promise<{ hub: Site; home: Site; homeConfig: Config; port: number; kh: string; keyPath: string; dir: string }> {
    const { dir, hub, home } = await twoSites(label);
    const key = makeKey(dir, 'id_home');
    const c0 = configs(dir, hub, home, 1, key.privatePath, '/dev/null');
    const sshd = await startSshd({
      authorizedKeys: [{ publicKey: key.publicKey, command: `${process.execPath} ${bin} serve --peer home --no-run --config ${c0.hubFile}` }],
    });
    cleanups.push(() => sshd.stop());
    const c = configs(dir, hub, home, sshd.port, key.privatePath, sshd.knownHostsFile);
    return { hub, home, homeConfig: c.homeConfig, port: sshd.port, kh: sshd.knownHostsFile, keyPath: key.privatePath, dir };
  }

  it('syncs both directions; mailbag serve takes its identity from --peer', async () => {
    const s = await setup('sshd');
    const down = await enqueue(s.hub, 'home', messages([400, 4000, 40000], 13));
    const up = await enqueue(s.home, 'hub', messages([1000, 2_000_000], 14));
    const r = await syncPeer({ config: s.homeConfig, peer: 'hub' });
    expect(r.drained).toBe(true);
    expect(ids(s.home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(s.hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(ids(s.hub, 'out', 'home')).toEqual([]);
    for (const [id, p] of up) expect(payloadOf(s.hub, 'in', 'home', id).equals(p)).toBe(true);
  });

  it('a client whose site name is not the forced --peer is refused, nothing taken', async () => {
    const s = await setup('sshd-evil');
    const down = await enqueue(s.hub, 'home', messages([400], 15));
    // the same key, but this configuration says the site is "office"
    const office = { ...s.homeConfig, site: 'office' };
    await expect(syncPeer({ config: office, peer: 'hub' })).rejects.toMatchObject({ code: 'auth', message: expect.stringMatching(/for peer home, not office|expected to talk to home/) });
    expect(ids(s.hub, 'out', 'home')).toEqual([...down.keys()]);
  });

  it('the TCP connection cut at random offsets: every job arrives once', async () => {
    const s = await setup('sshd-cut');
    const down = await enqueue(s.hub, 'home', [...messages([5000, 9000], 16), randomBytes(900_000)]);
    const up = await enqueue(s.home, 'hub', [randomBytes(500_000)]);
    let x = 7;
    const proxy = await startCutProxy({
      target: { host: '127.0.0.1', port: s.port },
      // the first six connections are cut somewhere past the SSH handshake
      cutAfter: (n) => (n < 6 ? 6000 + ((x = (x * 1103515245 + 12345) & 0x7fffffff) % 400_000) : undefined),
    });
    cleanups.push(() => proxy.close());
    // the known_hosts entry names the sshd's port; the proxy has its own
    const kh = join(s.dir, 'known_hosts_proxy');
    const { readFileSync } = await import('node:fs');
    writeFileSync(kh, readFileSync(s.kh, 'utf8').replaceAll(`]:${s.port} `, `]:${proxy.port} `));
    const cfg: Config = { ...s.homeConfig, peers: { hub: { ...s.homeConfig.peers.hub!, port: proxy.port, knownHosts: kh } } };
    let broke = 0;
    for (let i = 0; i < 12; i++) {
      try {
        const r = await syncPeer({ config: cfg, peer: 'hub' });
        if (r.drained && ids(s.hub, 'out', 'home').length === 0 && ids(s.home, 'out', 'hub').length === 0) break;
      } catch (err) {
        expect((err as { code?: string }).code).toMatch(/^(link|timeout|unreachable|locked)$/);
        broke++;
        // the far `mailbag serve` notices the cut and lets go of its lock
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    expect(broke).toBeGreaterThanOrEqual(3);
    expect(ids(s.home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(s.hub, 'in', 'home')).toEqual([...up.keys()].sort());
    for (const [id, p] of down) expect(payloadOf(s.home, 'in', 'hub', id).equals(p)).toBe(true);
    expect(existsSync(join(s.hub.root, 'ledger', 'home'))).toBe(true);
  }, 120_000);
});
