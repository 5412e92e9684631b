// session12: `mailbag sync` over a real OpenSSH sshd says, when the far `mailbag serve` is
// still at its run step a second after the BYEs (sync no longer waits for it: session11),
// that it went on and where to look, instead of nothing. (What the far side said before,
// `PEER said: …`, is in test/unit/session/session12-far-stderr.test.ts: over sshd its
// arrival before the let-go is a matter of timing.) The far MTA here
// blocks until the test releases it after sync has exited, so the far side is surely at
// work when sync ends (no timing assumed); every wait is bounded.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { need } from '../helpers/need.js';
import { makeKey } from '../helpers/ssh-keys.js';
import { haveSshd, serveCommand, startSshd } from '../helpers/sshd.js';
import { enqueue, ids, makeSite, messages, tempDir } from '../unit/session/sites.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin', 'mailbag.js');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const haveAll = haveSshd() && need('the built mailbag', [bin], 'run npm run build first (npm test does)');

describe.skipIf(!haveAll)('mailbag sync and the far serve\'s run step (session12)', () => {
  it('the far side still at work when sync ends: sync exits 0 at once and says so, with where to look; the far side then delivers', async () => {
    const t = tempDir('s12-far-sshd');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const sent = join(t.dir, 'sent');
    mkdirSync(sent);
    const release = join(t.dir, 'release');
    // the far MTA holds each message until released (at most 60 s)
    const sendmail = join(t.dir, 'held-sendmail');
    writeFileSync(sendmail, `#!/bin/sh\ncat > ${sent}/$$.stdin\ni=0\nwhile [ ! -e ${release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\ntouch ${sent}/$$.done\nexit 0\n`);
    chmodSync(sendmail, 0o755);
    // released whatever happens, so no far serve outlives the test by more than its wait
    cleanups.push(() => writeFileSync(release, ''));
    const key = makeKey(t.dir, 'id_home');
    const hubFile = join(t.dir, 'hub.toml');
    writeFileSync(hubFile, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[delivery]\nsendmail = ${JSON.stringify(sendmail)}\nmta = "sendmail"\n[peers.home]\naccept = ["rmail"]\n`);
    const sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: serveCommand('home', hubFile) }] });
    cleanups.push(() => sshd.stop());
    const homeFile = join(t.dir, 'home.toml');
    writeFileSync(
      homeFile,
      `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${sshd.port}\nuser = ${JSON.stringify(sshd.user)}\n` +
        `identity = ${JSON.stringify(key.privatePath)}\nknown_hosts = ${JSON.stringify(sshd.knownHostsFile)}\nkeepalive = "2s"\nconnect_timeout = "10s"\n`,
    );
    const up = [...(await enqueue(home, 'hub', messages([2000, 3000], 51))).keys()].sort();
    const r = spawnSync(process.execPath, [bin, 'sync', 'hub', '--config', homeFile], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    // the far side was still at its run step (held by its MTA): said, and where to look
    expect(r.stdout).toMatch(/^hub: its mailbag serve went on after the session \(its run step\); what it says from then on is not shown here: mailbag status and mailbag failed on hub show how its jobs went$/m);
    expect(existsSync(release)).toBe(false);
    writeFileSync(release, '');
    const until = Date.now() + 40_000;
    const done = (): number => readdirSync(sent).filter((n) => n.endsWith('.done')).length;
    while (Date.now() < until && (done() < up.length || ids(hub, 'in', 'home').length > 0)) await new Promise((res) => setTimeout(res, 100));
    expect(done()).toBe(up.length);
    expect(ids(hub, 'in', 'home')).toEqual([]);
  }, 90_000);
});
