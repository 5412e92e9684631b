// The commands as users run them, from dist/: `mailbag sync hub` dialling through the real
// OpenSSH client (transport = "command") into a real sshd whose authorized_keys forces
// `mailbag serve --peer home`; `mailbag dispatch`; the exit codes for an unreachable peer
// and an unknown one.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { need } from '../helpers/need.js';
import { makeKey } from '../helpers/ssh-keys.js';
import { freePort, haveSshd, startSshd } from '../helpers/sshd.js';
import { encodeAck, encodeHello } from '../../lib/session/messages.js';
import { enqueue, ids, makeSite, messages, tempDir } from '../unit/session/sites.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const bin = join(repo, 'dist', 'bin', 'mailbag.js');
const ready = haveSshd() && need('the OpenSSH client', ['/usr/bin/ssh'], 'apt-get install openssh-client') && need('the built mailbag', [bin], 'run npm run build first (npm test does)');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function mailbag(args: string[], input?: Buffer): { status: number | null; out: string; err: string; stdout: Buffer } {
  const env = { ...process.env };
  delete env.MAILBAG_CONFIG;
  const r = spawnSync(process.execPath, [bin, ...args], { env, timeout: 60_000, ...(input ? { input } : {}) });
  return { status: r.status, out: r.stdout.toString(), err: r.stderr.toString(), stdout: r.stdout };
}

describe.skipIf(!ready)('mailbag sync, dispatch and serve as commands', () => {
  it('sync over the OpenSSH client into a forced mailbag serve; dispatch finds nothing due after', async () => {
    const t = tempDir('cli');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const key = makeKey(t.dir, 'id_home');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
    const sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: `${process.execPath} ${bin} serve --peer home --no-run --config ${hubToml}` }] });
    cleanups.push(() => sshd.stop());
    const command = ['ssh', '-F', '/dev/null', '-i', key.privatePath, '-p', String(sshd.port), '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', `${sshd.user}@127.0.0.1`, 'mailbag', 'serve'];
    const homeToml = join(t.dir, 'home.toml');
    writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(command)}\n`);
    const down = await enqueue(hub, 'home', messages([700, 7000, 70000], 41));
    const up = await enqueue(home, 'hub', messages([1200], 42));

    const r = mailbag(['sync', 'hub', '--config', homeToml, '--no-run']);
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(/^hub: sent 1 jobs in 1 bags .*received 3 jobs in 1 bags/);
    expect(ids(home, 'in', 'hub')).toEqual([...down.keys()].sort());
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());

    const d = mailbag(['dispatch', '--config', homeToml, '--no-run']);
    expect(d.status, d.err).toBe(0);
    expect(d.out).toBe('no peer has work queued or is due\n');
    await enqueue(home, 'hub', messages([300], 43));
    const d2 = mailbag(['dispatch', '--config', homeToml, '--no-run']);
    expect(d2.status, d2.err).toBe(0);
    expect(d2.out).toMatch(/^hub: sent 1 jobs/);
    expect(ids(hub, 'in', 'home')).toHaveLength(2);
  });

  it('after a session that received jobs, sync hands them to the runner', async () => {
    const t = tempDir('cli-run');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
    // a stand-in sendmail that records its argv and message (the real MTAs are tested by the runner's suites)
    const record = join(t.dir, 'delivered');
    const fake = join(t.dir, 'sendmail');
    writeFileSync(fake, `#!/bin/sh\nn=$(date +%s%N)\nprintf '%s\\n' "$*" > ${record}.$n.argv\ncat > ${record}.$n.msg\nexit 0\n`, { mode: 0o755 });
    const homeToml = join(t.dir, 'home.toml');
    const serve = [process.execPath, bin, 'serve', '--peer', 'home', '--no-run', '--config', hubToml];
    writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[delivery]\nmethod = "sendmail"\nsendmail = ${JSON.stringify(fake)}\nmta = "sendmail"\n[peers.hub]\ntransport = "command"\ncommand = ${JSON.stringify(serve)}\n`);
    await enqueue(hub, 'home', messages([700, 900], 45));
    const r = mailbag(['sync', 'hub', '--config', homeToml]);
    expect(r.status, r.err).toBe(0);
    const { readdirSync } = await import('node:fs');
    const argvs = readdirSync(t.dir).filter((n) => n.startsWith('delivered.') && n.endsWith('.argv'));
    expect(argvs).toHaveLength(2);
    expect(ids(home, 'in', 'hub')).toEqual([]);
  });

  it('exits 75 with a 4.x.x line when the peer is unreachable; jobs stay queued', async () => {
    const t = tempDir('cli-down');
    cleanups.push(t.remove);
    const home = await makeSite(t.dir, 'home');
    const port = await freePort();
    const key = makeKey(t.dir, 'id_home');
    const homeToml = join(t.dir, 'home.toml');
    writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${port}\nidentity = ${JSON.stringify(key.privatePath)}\nknown_hosts = "/dev/null"\nconnect_timeout = "5s"\n`);
    const queued = await enqueue(home, 'hub', messages([500], 44));
    const r = mailbag(['sync', 'hub', '--config', homeToml]);
    expect(r.status, r.err).toBe(75);
    expect(r.err).toMatch(/^4\.4\.\d mailbag: /);
    expect(ids(home, 'out', 'hub')).toEqual([...queued.keys()]);
  });

  it('a changed host key is a configuration error (78) that says what to fix; nothing is sent', async () => {
    const t = tempDir('cli-hostkey');
    cleanups.push(t.remove);
    const home = await makeSite(t.dir, 'home');
    const key = makeKey(t.dir, 'id_home');
    const sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: 'false' }] });
    cleanups.push(() => sshd.stop());
    // known_hosts names this host and port, with some other key
    const other = makeKey(t.dir, 'other_host');
    const kh = join(t.dir, 'known_hosts');
    writeFileSync(kh, `[127.0.0.1]:${sshd.port} ${other.publicKey.split(' ').slice(0, 2).join(' ')}\n`);
    const homeToml = join(t.dir, 'home.toml');
    writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${sshd.port}\nuser = ${JSON.stringify(sshd.user)}\nidentity = ${JSON.stringify(key.privatePath)}\nknown_hosts = ${JSON.stringify(kh)}\n`);
    const queued = await enqueue(home, 'hub', messages([500], 46));
    const r = mailbag(['sync', 'hub', '--config', homeToml]);
    expect(r.status, r.err).toBe(78);
    expect(r.err).toMatch(/^4\.7\.0 mailbag: .*host key/i);
    expect(ids(home, 'out', 'hub')).toEqual([...queued.keys()]);
  });

  it('a key forced to another --peer is a configuration error (77) that says which; nothing taken (proto9)', async () => {
    const t = tempDir('cli-identity');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const office = await makeSite(t.dir, 'office');
    const key = makeKey(t.dir, 'id_office');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n[peers.office]\n`);
    // the admin pasted office's key with home's forced command
    const sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: `${process.execPath} ${bin} serve --peer home --no-run --config ${hubToml}` }] });
    cleanups.push(() => sshd.stop());
    const officeToml = join(t.dir, 'office.toml');
    writeFileSync(officeToml, `site = "office"\nspool = ${JSON.stringify(office.root)}\n[peers.hub]\nhost = "127.0.0.1"\nport = ${sshd.port}\nuser = ${JSON.stringify(sshd.user)}\nidentity = ${JSON.stringify(key.privatePath)}\nknown_hosts = ${JSON.stringify(sshd.knownHostsFile)}\n`);
    const down = await enqueue(hub, 'home', messages([500], 47));
    const up = await enqueue(office, 'hub', messages([500], 48));
    // cron would retry a 75 for ever; this needs the admin, as a changed host key does
    const r = mailbag(['sync', 'hub', '--config', officeToml, '--no-run']);
    expect(r.status, r.err).toBe(77);
    expect(r.err).toMatch(/^4\.7\.0 mailbag: .*(for peer home, not office|expected to talk to home, but this site is office)/);
    expect(ids(hub, 'out', 'home')).toEqual([...down.keys()]);
    expect(ids(office, 'out', 'hub')).toEqual([...up.keys()]);
    expect(ids(hub, 'in', 'office')).toEqual([]);
  });

  it('serve refusing a session (a client that is not --peer, a protocol error) says so on stderr and exits non-zero, not 0 in silence (proto9)', async () => {
    const t = tempDir('cli-serve-fail');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
    const hello = (site: string): Buffer => encodeHello({ site, peer: 'hub', codecs: ['br'], maxBag: 1e8, maxExpanded: 1e9, maxJobs: 1000, maxJob: 1e7, keepalive: 15000, software: 'test' });
    // what sshd hands the forced command: the client's bytes on stdin, then its end
    const office = mailbag(['serve', '--peer', 'home', '--no-run', '--config', hubToml], hello('office'));
    expect(office.status, office.err).toBe(77);
    expect(office.err).toMatch(/^4\.7\.0 mailbag: this link is for peer home, not office/m);
    expect(office.stdout.subarray(office.stdout.indexOf(0x02, 5))[0]).toBe(0x02);
    const bad = mailbag(['serve', '--peer', 'home', '--no-run', '--config', hubToml], Buffer.concat([hello('home'), encodeAck({ bag: 'a'.repeat(64), jobs: 1, duplicates: 0 })]));
    expect(bad.status, bad.err).toBe(76);
    expect(bad.err).toMatch(/^4\.5\.0 mailbag: .*ACK for bag aaaaaaaaaaaa that was not sent/m);
  });

  it('dispatch: a peer whose key cannot be used (77) makes the exit status though a peer dialled before it is only down (75); both said (proto9)', async () => {
    const t = tempDir('cli-dispatch-worst');
    cleanups.push(t.remove);
    const home = await makeSite(t.dir, 'home');
    // alpha: ssh that finds the host down (ssh's own words and status)
    const ssh = join(t.dir, 'ssh');
    writeFileSync(ssh, '#!/bin/sh\necho "ssh: connect to host alpha port 22: Connection refused" >&2\nexit 255\n', { mode: 0o755 });
    const homeToml = join(t.dir, 'home.toml');
    writeFileSync(homeToml, `site = "home"\nspool = ${JSON.stringify(home.root)}\n[peers.alpha]\ntransport = "command"\ncommand = [${JSON.stringify(ssh)}, "alpha", "mailbag", "serve"]\n[peers.beta]\nhost = "127.0.0.1"\nport = 9\nidentity = ${JSON.stringify(join(t.dir, 'no-such-key'))}\n`);
    await enqueue(home, 'alpha', messages([300], 49));
    await enqueue(home, 'beta', messages([300], 50));
    const r = mailbag(['dispatch', '--config', homeToml, '--no-run']);
    expect(r.err).toMatch(/^4\.4\.\d alpha: .*Connection refused/m);
    expect(r.err).toMatch(/^4\.7\.0 beta: .*cannot read the identity file/m);
    expect(r.status, r.err).toBe(77);
  });

  it('serve refuses an unknown peer with an ERROR frame on stdout and a 4.3.5 line on stderr', async () => {
    const t = tempDir('cli-serve');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const hubToml = join(t.dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = ${JSON.stringify(hub.root)}\n[peers.home]\n`);
    const r = mailbag(['serve', '--peer', 'office', '--config', hubToml], Buffer.alloc(0));
    expect(r.status).toBe(75);
    expect(r.err).toMatch(/^4\.3\.5 mailbag: .*unknown peer "office"/);
    expect(r.stdout[0]).toBe(0x02);
    expect(r.stdout.subarray(5).toString()).toMatch(/does not know a peer called office/);
  });
});
