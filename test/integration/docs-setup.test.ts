// docs/setup.md walked as the page says, with real OpenSSH on 127.0.0.1: both sites'
// mailbag.toml, the keygen lines, the authorized_keys line with its forced command, the
// first sync, the check, the systemd units' ExecStart= lines and the full-disk recovery
// commands, each read from the page and changed only in paths and names (the hub's
// sshd listens on a free port and logs in as the user running the tests; `mailbag` is
// the test user; received jobs go to a recording sendmail of each site, since real MTAs
// are other tests' business). Mail must cross both ways.

import { chownSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestUser, makeOwnedDir, makeSharedTempDir, removeTempDir, repoRoot, run, type RunResult, type TestUser } from '../helpers/mta-common.js';
import { haveSshd, startSshd, type Sshd } from '../helpers/sshd.js';
import { canMount, mountTmpfs, unmount } from '../unit/spool/mount.js';
import { docSnippet } from './docs-snippet.js';

const page = 'setup.md';
const snippet = (name: string): string => docSnippet(page, name);
const mailbagCjs = join(repoRoot, 'dist/bin/mailbag.cjs');

function unitValue(unit: string, key: string): string {
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(unit);
  if (!m) throw new Error(`docs/setup.md: unit has no ${key}=`);
  return m[1]!.trim();
}

/** a sendmail that appends its arguments and stdin to FILE.log */
function recordingSendmail(file: string, owner: TestUser | undefined): string {
  writeFileSync(file, '#!/bin/sh\nprintf "ARGS %s\\n" "$*" >> "$0.log"\ncat >> "$0.log"\n', { mode: 0o755 });
  writeFileSync(`${file}.log`, '');
  if (owner) chownSync(`${file}.log`, owner.uid, owner.gid);
  return file;
}

const log = (sendmail: string): string => readFileSync(`${sendmail}.log`, 'utf8');

describe.skipIf(!haveSshd())('docs/setup.md: a hub and a home site as the page sets them up', () => {
  let dir: string;
  let user: TestUser;
  let sshd: Sshd | undefined;
  let hubToml: string;
  let homeToml: string;
  let hubSendmail: string;
  let homeSendmail: string;
  let homeDir: string;

  /** a sh snippet of the page as root with `runuser -u mailbag` → the test user, /etc/mailbag/mailbag.toml → home's */
  const sh = (text: string, input = ''): Promise<RunResult> =>
    run('sh', ['-ec', text.replaceAll('runuser -u mailbag --', `runuser -u ${user.name} --`).replaceAll('/usr/local/bin/mailbag', mailbagCjs)], {
      env: { ...process.env, MAILBAG_CONFIG: homeToml },
      cwd: dir,
      input,
      timeoutMs: 60_000,
    });
  const asHome = (args: string[]): Promise<RunResult> => run(mailbagCjs, args, { uid: user.uid, gid: user.gid, env: { ...process.env, MAILBAG_CONFIG: homeToml }, timeoutMs: 60_000 });
  const asHub = (args: string[], input = ''): Promise<RunResult> => run(mailbagCjs, [...args.slice(0, 1), '--config', hubToml, ...args.slice(1)], { input, timeoutMs: 60_000 });

  beforeAll(async () => {
    user = ensureTestUser();
    dir = makeSharedTempDir('docs-setup');
    const hubDir = makeOwnedDir(join(dir, 'hub'), { name: 'root', uid: 0, gid: 0 }, 0o700);
    homeDir = makeOwnedDir(join(dir, 'home'), user, 0o700);
    makeOwnedDir(join(hubDir, 'spool'), { name: 'root', uid: 0, gid: 0 }, 0o700);
    makeOwnedDir(join(homeDir, 'spool'), user, 0o700);
    hubSendmail = recordingSendmail(join(hubDir, 'sendmail'), undefined);
    homeSendmail = recordingSendmail(join(homeDir, 'sendmail'), user);

    // keys: the page's lines, /etc/mailbag → home's directory
    const keygen = snippet('keygen').replaceAll('/etc/mailbag/', `${homeDir}/`).replaceAll('chown mailbag:', `chown ${user.name}:`);
    const k = await run('sh', ['-ec', keygen]);
    expect(k.code, k.stderr).toBe(0);
    const publicKey = readFileSync(join(homeDir, 'id_ed25519.pub'), 'utf8').trim();

    // the hub's authorized_keys line: its options and forced command as written
    const ak = /^command="([^"]*)",(\S+) ssh-ed25519 \S+ (.*)$/.exec(snippet('authorized_keys').trim());
    expect(ak, 'authorized_keys line').not.toBeNull();
    const [, command, options] = ak!;
    expect(options).toBe('restrict');
    expect(command).toBe('/usr/local/bin/mailbag serve --peer home');
    hubToml = join(hubDir, 'mailbag.toml');
    sshd = await startSshd({
      // the configuration is not at /etc/mailbag here: --config, as docs/security.md says
      authorizedKeys: [{ publicKey, command: `${command!.replace('/usr/local/bin/mailbag', mailbagCjs)} --config ${hubToml}`, options: options! }],
    });

    writeFileSync(hubToml, `${snippet('hub.toml').replace('/var/spool/mailbag', join(hubDir, 'spool'))}\n[delivery]\nsendmail = "${hubSendmail}"\n`);
    homeToml = join(homeDir, 'mailbag.toml');
    const home = snippet('home.toml')
      .replace('/var/spool/mailbag', join(homeDir, 'spool'))
      .replace('host = "hub.example.org"', `host = "127.0.0.1"\nport = ${sshd.port}\nuser = "${sshd.user}"`)
      .replaceAll('/etc/mailbag/', `${homeDir}/`);
    writeFileSync(homeToml, `${home}\n[delivery]\nsendmail = "${homeSendmail}"\n`);
    chownSync(homeToml, user.uid, user.gid);
    // what the page's ssh-keyscan puts there (sshd is on another port than 22)
    writeFileSync(join(homeDir, 'known_hosts'), `${sshd.knownHostsLines.join('\n')}\n`);
    chownSync(join(homeDir, 'known_hosts'), user.uid, user.gid);
  }, 120_000);

  const mounted: string[] = [];
  afterAll(async () => {
    while (mounted.length) unmount(mounted.pop()!);
    await sshd?.stop();
    if (dir) removeTempDir(dir);
  });

  it('the key is mailbag\'s own, 0600, and the configuration loads at both sites', async () => {
    const st = execFileSync('stat', ['-c', '%U %a', join(homeDir, 'id_ed25519')], { encoding: 'utf8' }).trim();
    expect(st).toBe(`${user.name} 600`);
    expect((await asHub(['status'])).code).toBe(0);
    expect((await asHome(['status'])).code).toBe(0);
  });

  it('the first sync ends with its summary line and exit 0', async () => {
    const r = await sh(snippet('first-sync'));
    expect(r.code, `${r.stderr}\n${sshd!.log()}`).toBe(0);
    expect(r.stdout.toString()).toMatch(/^hub: sent 0 jobs in 0 bags .*received 0 jobs/m);
  });

  it('the check queues a job for hub; the dispatch unit\'s ExecStart sends it and the hub delivers it', async () => {
    const r = await sh(snippet('check'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toMatch(/^hub\s+1 job, /m);

    const service = snippet('mailbag-dispatch.service');
    expect(unitValue(service, 'User')).toBe('mailbag');
    expect(unitValue(service, 'Type')).toBe('oneshot');
    const d = await sh(`runuser -u mailbag -- ${unitValue(service, 'ExecStart')}`);
    expect(d.code, d.stderr).toBe(0);
    expect(log(hubSendmail)).toMatch(/^ARGS -oi -f you@example\.org -- you@example\.net\nSubject: test\n\nhello\n/m);
    const status = await asHome(['status', '--json']);
    expect(JSON.parse(status.stdout.toString()).peers[0].out.jobs).toBe(0);
  });

  it('mail the hub holds for home crosses at home\'s next sync and is delivered there', async () => {
    const q = await asHub(['enqueue', 'home', '-f', 'world@example.com', '--', 'you@example.org'], 'Subject: inbound\n\nfrom the world\n');
    expect(q.code, q.stderr).toBe(0);
    const r = await sh(snippet('first-sync'));
    expect(r.code, r.stderr).toBe(0);
    expect(log(homeSendmail)).toMatch(/^ARGS -oi -f world@example\.com -- you@example\.org\nSubject: inbound\n/m);
  });

  it('the run unit\'s ExecStart and the full-disk recovery commands run as written', async () => {
    const service = snippet('mailbag-run.service');
    expect(unitValue(service, 'User')).toBe('mailbag');
    const r = await sh(`runuser -u mailbag -- ${unitValue(service, 'ExecStart')}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toMatch(/^run: \d+ done/m);
    const f = await sh(snippet('after-full-disk'));
    expect(f.code, f.stderr).toBe(0);
  });

  it.skipIf(!canMount('docs/setup.md, after a full disk'))('a full spool: enqueue and the session exit 75 (4.3.1); after space is freed the page\'s two commands finish everything, nothing left to delete', async () => {
    // home's spool on a 400K file system: one 200K message fits, the next does not
    const small = join(dir, 'small');
    mountTmpfs(small, '400k');
    mounted.push(small);
    chownSync(small, user.uid, user.gid);
    const smallToml = join(homeDir, 'small.toml');
    writeFileSync(smallToml, readFileSync(homeToml, 'utf8').replace(join(homeDir, 'spool'), join(small, 'spool')));
    const asSmall = (args: string[], input = ''): Promise<RunResult> =>
      run(mailbagCjs, args, { uid: user.uid, gid: user.gid, env: { ...process.env, MAILBAG_CONFIG: smallToml }, input, timeoutMs: 60_000 });
    const big = (subject: string): string => `Subject: ${subject}\n\n${(randomBytes(150_000).toString('base64').match(/.{1,76}/g) ?? []).join('\n')}\n`;

    expect((await asSmall(['enqueue', 'hub', '-f', 'you@example.org', '--', 'up@example.net'], big('up'))).code).toBe(0);
    const full = await asSmall(['enqueue', 'hub', '-f', 'you@example.org', '--', 'up2@example.net'], big('up2'));
    expect(full.code).toBe(75);
    expect(full.stderr).toMatch(/^4\.3\.1 mailbag: spool full/);
    for (const rcpt of ['down1@example.org', 'down2@example.org']) {
      expect((await asHub(['enqueue', 'home', '-f', 'world@example.com', '--', rcpt], big(rcpt))).code).toBe(0);
    }
    const broke = await asSmall(['sync', 'hub']);
    expect(broke.code).toBe(75);
    expect(broke.stderr).toMatch(/^4\.3\.1 /m);

    execFileSync('mount', ['-o', 'remount,size=4m', small], { stdio: 'pipe' });
    const f = await run('sh', ['-ec', snippet('after-full-disk').replaceAll('runuser -u mailbag --', `runuser -u ${user.name} --`).replaceAll('/usr/local/bin/mailbag', mailbagCjs)], {
      env: { ...process.env, MAILBAG_CONFIG: smallToml },
      timeoutMs: 60_000,
    });
    expect(f.code, f.stderr).toBe(0);
    expect(log(homeSendmail)).toMatch(/-- down1@example\.org\n/);
    expect(log(homeSendmail)).toMatch(/-- down2@example\.org\n/);
    expect(log(hubSendmail)).toMatch(/-- up@example\.net\n/);
    const st = JSON.parse((await asSmall(['status', '--json'])).stdout.toString()) as { peers: Array<Record<string, { jobs: number }>> };
    expect([st.peers[0]!.out!.jobs, st.peers[0]!.in!.jobs, st.peers[0]!.failed!.jobs]).toEqual([0, 0, 0]);
    expect(readdirSync(join(small, 'spool', 'tmp'))).toEqual([]);
    expect(readdirSync(join(small, 'spool', 'bags', 'in', 'hub'))).toEqual([]);
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze'))('systemd accepts the units and timers (systemd-analyze verify)', () => {
    const units = makeOwnedDir(join(dir, 'units'), { name: 'root', uid: 0, gid: 0 }, 0o755);
    const names = ['mailbag-dispatch.service', 'mailbag-dispatch.timer', 'mailbag-run.service', 'mailbag-run.timer'];
    for (const n of names) {
      const text = snippet(n);
      expect(text.startsWith(`# /etc/systemd/system/${n}\n`)).toBe(true);
      writeFileSync(join(units, n), text.replaceAll('/usr/local/bin/mailbag', mailbagCjs));
    }
    // exits non-zero with the reason on any error (an unknown key, a bad OnCalendar=, a missing program)
    execFileSync('systemd-analyze', ['verify', ...names.map((n) => join(units, n))], { stdio: 'pipe' });
  });
});
