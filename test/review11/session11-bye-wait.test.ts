// session11: a `mailbag sync` ended up to 10 s (CLOSE_GRACE_MS) after both BYEs, waiting for
// the far `mailbag serve` to exit, which it does only after its own post-session work: the
// moves into in/PEER/ and its run step (the received jobs handed to the MTA, here a sendmail
// that takes 12 s a message). A sync from cron thus often ended 10 s late, its link torn down
// "did not close". The session's result does not depend on that work: the dialer no longer
// waits for it, and the far side still finishes it (every job delivered once, in/home/
// empty), over a real OpenSSH sshd with the built mailbag at both ends.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { need } from '../helpers/need.js';
import { makeKey } from '../helpers/ssh-keys.js';
import { haveSshd, serveCommand, startSshd } from '../helpers/sshd.js';
import { enqueue, ids, makeSite, messages, payloadOf, tempDir, type Site } from '../unit/session/sites.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin', 'mailbag.js');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const haveAll = haveSshd() && need('the built mailbag', [bin], 'run npm run build first (npm test does)');

describe.skipIf(!haveAll)('mailbag sync over a real sshd does not wait for the far serve\'s work after BYE', () => {
  it('a serve whose run step takes 12 s: sync ends within 7 s (not after the 10 s grace), exit 0; serve still delivers every job once', async () => {
    const t = tempDir('s11-bye');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const sent = join(t.dir, 'sent');
    spawnSync('mkdir', [sent]);
    // a slow MTA: 12 s a message, each recorded once it is through
    const sendmail = join(t.dir, 'slow-sendmail');
    writeFileSync(sendmail, `#!/bin/sh\ncat > ${sent}/$$.stdin\nsleep 12\ntouch ${sent}/$$.done\nexit 0\n`);
    chmodSync(sendmail, 0o755);
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
    const up = [...(await enqueue(home, 'hub', messages([2000, 3000, 4000], 41))).keys()].sort();
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [bin, 'sync', 'hub', '--config', homeFile, '--no-run'], { encoding: 'utf8', timeout: 60_000 });
    const took = performance.now() - t0;
    expect(r.status, r.stderr).toBe(0);
    expect(ids(home, 'out', 'hub')).toEqual([]);
    // before: 10.3-10.6 s (close()'s grace, then the link torn down); after: 1.5-2.5 s, and
    // 3.3 s in a loaded CI run (stop 16's second run), so the line is drawn at 7 s: well
    // under the grace the defect waited out, well over what load adds to a session
    expect(took).toBeLessThan(7000);
    // the far side finishes its work all the same: each job handed to the MTA once, through
    const until = Date.now() + 40_000;
    const done = (): number => readdirSync(sent).filter((n) => n.endsWith('.done')).length;
    while (Date.now() < until && (done() < up.length || ids(hub, 'in', 'home').length > 0)) await new Promise((res) => setTimeout(res, 100));
    expect(readdirSync(sent).filter((n) => n.endsWith('.stdin'))).toHaveLength(up.length);
    expect(done()).toBe(up.length);
    expect(ids(hub, 'in', 'home')).toEqual([]);
    expect(existsSync(join(hub.root, 'ledger', 'home'))).toBe(true);
  }, 90_000);

  it('serve killed (SIGKILL) after both BYEs, its moves and removals maybe under way: sync exits 0, and after the next sync nothing is lost or stored twice', async () => {
    const w = await twoSites('s11-bye-kill');
    const down = await enqueue(w.hub, 'home', [...messages([900, 4000], 43), ...Array.from({ length: 30 }, () => randomBytes(6000)), randomBytes(1_300_000)]);
    const up = await enqueue(w.home, 'hub', [...messages([1200, 7000], 44), ...Array.from({ length: 30 }, () => randomBytes(6000)), randomBytes(1_100_000)]);
    w.sshd.setAuthorizedKeys([{ publicKey: w.key.publicKey, command: serveCommand('home', w.hubFile, { MAILBAG_FAULT: 'session-after-bye' }, ['--no-run']) }]);
    const first = spawnSync(process.execPath, [bin, 'sync', 'hub', '--config', w.homeFile, '--no-run'], { encoding: 'utf8', timeout: 60_000 });
    // the session was over for both when serve died: nothing of it is the dialer's failure
    expect(first.status, first.stderr).toBe(0);
    expect(ids(w.home, 'out', 'hub')).toEqual([]);
    w.sshd.setAuthorizedKeys([{ publicKey: w.key.publicKey, command: serveCommand('home', w.hubFile, {}, ['--no-run']) }]);
    let last = spawnSync(process.execPath, [bin, 'sync', 'hub', '--config', w.homeFile, '--no-run'], { encoding: 'utf8', timeout: 60_000 });
    for (let i = 0; i < 5 && last.status !== 0 && /locked/.test(last.stderr); i++) {
      await new Promise((r) => setTimeout(r, 500));
      last = spawnSync(process.execPath, [bin, 'sync', 'hub', '--config', w.homeFile, '--no-run'], { encoding: 'utf8', timeout: 60_000 });
    }
    expect(last.status, last.stderr).toBe(0);
    expect(ids(w.hub, 'in', 'home')).toEqual([...up.keys()].sort());
    expect(ids(w.home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(w.hub, 'out', 'home')).toEqual([]);
    for (const [id, p] of up) expect(payloadOf(w.hub, 'in', 'home', id).equals(p)).toBe(true);
    for (const [id, p] of down) expect(payloadOf(w.home, 'in', 'hub', id).equals(p)).toBe(true);
    expect(ledgerJobs(w.hub, 'home').sort()).toEqual([...up.keys()].sort());
    expect(ledgerJobs(w.home, 'hub').sort()).toEqual([...down.keys()].sort());
    expect(readdirSync(join(w.hub.root, 'bags', 'in', 'home'))).toEqual([]);
    expect(readdirSync(join(w.hub.root, 'bags', 'out', 'home'))).toEqual([]);
  }, 120_000);
});

describe.skipIf(!haveAll || !existsSync('/usr/bin/ssh'))('the same through transport = "command" (the system ssh)', () => {
  // before command.ts's detach (req-session11 R2, in b607d8b) the dialer waited the whole
  // CLOSE_GRACE_MS for the ssh child's exit, then killed it (seen: 11.2 and 11.4 s, exit 0)
  it('a serve whose run step takes 12 s: sync ends within 7 s (not after the 10 s grace), exit 0; serve still delivers every job once', async () => {
    const w = await twoSites('s11-bye-cmd');
    const sent = join(w.dir, 'sent');
    spawnSync('mkdir', [sent]);
    const sendmail = join(w.dir, 'slow-sendmail');
    writeFileSync(sendmail, `#!/bin/sh\ncat > ${sent}/$$.stdin\nsleep 12\ntouch ${sent}/$$.done\nexit 0\n`);
    chmodSync(sendmail, 0o755);
    writeFileSync(w.hubFile, `site = "hub"\nspool = ${JSON.stringify(w.hub.root)}\n[delivery]\nsendmail = ${JSON.stringify(sendmail)}\nmta = "sendmail"\n[peers.home]\naccept = ["rmail"]\n`);
    w.sshd.setAuthorizedKeys([{ publicKey: w.key.publicKey, command: serveCommand('home', w.hubFile) }]);
    const ssh = ['/usr/bin/ssh', '-F', '/dev/null', '-i', w.key.privatePath, '-p', String(w.sshd.port), '-o', `UserKnownHostsFile=${w.sshd.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', `${w.sshd.user}@127.0.0.1`, 'mailbag', 'serve'];
    writeFileSync(w.homeFile, `site = "home"\nspool = ${JSON.stringify(w.home.root)}\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(ssh)}\nkeepalive = "2s"\n`);
    const up = [...(await enqueue(w.home, 'hub', messages([2000, 3000, 4000], 45))).keys()].sort();
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [bin, 'sync', 'hub', '--config', w.homeFile, '--no-run'], { encoding: 'utf8', timeout: 60_000 });
    const took = performance.now() - t0;
    expect(r.status, r.stderr).toBe(0);
    expect(ids(w.home, 'out', 'hub')).toEqual([]);
    const until = Date.now() + 40_000;
    const done = (): number => readdirSync(sent).filter((n) => n.endsWith('.done')).length;
    while (Date.now() < until && (done() < up.length || ids(w.hub, 'in', 'home').length > 0)) await new Promise((res) => setTimeout(res, 100));
    expect(done()).toBe(up.length);
    expect(ids(w.hub, 'in', 'home')).toEqual([]);
    // before: 11.2-11.4 s; the line at 7 s as in the ssh2 case above
    expect(took).toBeLessThan(7000);
  }, 90_000);
});

interface Two {
  dir: string;
  hub: Site;
  home: Site;
  key: ReturnType<typeof makeKey>;
  sshd: Awaited<ReturnType<typeof startSshd>>;
  hubFile: string;
  homeFile: string;
}

async function twoSites(label: string): Promise<Two> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  const hub = await makeSite(t.dir, 'hub');
  const home = await makeSite(t.dir, 'home');
  const key = makeKey(t.dir, 'id_home');
  const hubFile = join(t.dir, 'hub.toml');
  writeFileSync(hubFile, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\naccept = ["rmail"]\n`);
  const sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: serveCommand('home', hubFile, {}, ['--no-run']) }] });
  cleanups.push(() => sshd.stop());
  const homeFile = join(t.dir, 'home.toml');
  writeFileSync(
    homeFile,
    `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${sshd.port}\nuser = ${JSON.stringify(sshd.user)}\n` +
      `identity = ${JSON.stringify(key.privatePath)}\nknown_hosts = ${JSON.stringify(sshd.knownHostsFile)}\nkeepalive = "2s"\nconnect_timeout = "10s"\n`,
  );
  return { dir: t.dir, hub, home, key, sshd, hubFile, homeFile };
}

function ledgerJobs(site: Site, peer: string): string[] {
  let text: string;
  try {
    text = readFileSync(join(site.root, 'ledger', peer), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').slice(1).filter(Boolean).flatMap((l) => (l.split(' ')[2] ?? '').split(',').filter(Boolean));
}
