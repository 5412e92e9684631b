// `mailbag serve` under a real OpenSSH sshd ends its process when its session is over, also
// when it received nothing: its stage worker is started at the session's start (unref'd),
// and a worker that staged nothing must not keep the process alive. The dialer waits for
// the far side's exit status (its link's close): a serve that lingers made every such
// `mailbag sync` wait CLOSE_GRACE_MS (10 s) at its end and tear the link down, and left
// the serve process running for good.

import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { syncPeer } from '../../lib/session/index.js';
import { transportForPeer } from '../../lib/transport/for-peer.js';
import type { Link, LinkEnd, Transport } from '../../lib/transport/types.js';
import { need } from '../helpers/need.js';
import { makeKey } from '../helpers/ssh-keys.js';
import { haveSshd, startSshd } from '../helpers/sshd.js';
import { enqueue, ids, makeSite, messages, tempDir } from '../unit/session/sites.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin', 'mailbag.js');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const haveAll = haveSshd() && need('the built mailbag', [bin], 'run npm run build first (npm test does)');

describe.skipIf(!haveAll)('mailbag serve over a real sshd exits when its session ends', () => {
  it('a session in which serve receives nothing: the link closes with serve\'s exit status 0', async () => {
    const t = tempDir('serve-exit');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const key = makeKey(t.dir, 'id_home');
    const hubFile = join(t.dir, 'hub.toml');
    writeFileSync(hubFile, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\naccept = ["rmail"]\n`);
    const sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: `${process.execPath} ${bin} serve --peer home --no-run --config ${hubFile}` }] });
    cleanups.push(() => sshd.stop());
    const homeFile = join(t.dir, 'home.toml');
    writeFileSync(
      homeFile,
      `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${sshd.port}\nuser = ${JSON.stringify(process.env.USER ?? 'root')}\n` +
        `identity = ${JSON.stringify(key.privatePath)}\nknown_hosts = ${JSON.stringify(sshd.knownHostsFile)}\nkeepalive = "2s"\nconnect_timeout = "10s"\n`,
    );
    const config = loadConfig({ path: homeFile, env: {} });
    // the link of each session, to see how it ended
    const links: Link[] = [];
    const inner = await transportForPeer(config.peers.hub!);
    const transport: Transport = {
      describe: () => inner.describe(),
      connect: async (o) => {
        const link = await inner.connect(o);
        links.push(link);
        return link;
      },
    };
    // hub -> home only (serve stages nothing), then a session with nothing at all
    const down = await enqueue(hub, 'home', messages([3000, 7000], 31));
    for (let i = 0; i < 2; i++) {
      const r = await syncPeer({ config, peer: 'hub', transport });
      expect(r.drained).toBe(true);
    }
    expect(ids(home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(links).toHaveLength(2);
    for (const link of links) {
      // before the fix: ok false, "the far side did not close within 10000 ms" (torn down)
      const end: LinkEnd = await link.done;
      expect({ ok: end.ok, exitCode: end.exitCode, error: end.error?.message }).toEqual({ ok: true, exitCode: 0, error: undefined });
    }
  }, 60_000);
});
