// req-audit #10: root working on the mailbag user's spool. A command started as root on
// a spool that belongs to another user becomes that user (lib/spool/owner.ts) before it
// opens anything, so nothing root-owned is left in the spool and the owner's next run
// works. Real processes (the package's bin), a real unprivileged user (mailbag-test,
// made by .ci/run or ensureTestUser), a real session between two sites (a command
// transport running `mailbag serve` of the other spool).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownSync, lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spool } from '../../lib/spool/index.js';
import { ensureTestUser, isRoot, makeOwnedDir, makeSharedTempDir, removeTempDir, repoRoot, run, type RunResult, type TestUser } from '../helpers/mta-common.js';

const mailbag = join(repoRoot, 'dist/bin/mailbag.cjs');
const fakeSendmail = join(repoRoot, 'test/fixtures/fake-sendmail');
const TRACE = /started as root; the spool (\S+) belongs to uid (\d+) \(([^)]+)\): now running as uid (\d+), gid (\d+), groups ([\d,]+)/;

/** every path under `root` whose owner is not `uid` */
function notOwnedBy(root: string, uid: number): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.uid !== uid) out.push(`${p} (uid ${st.uid})`);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(root);
  return out;
}

describe.skipIf(!isRoot)('root on a spool that belongs to another user', () => {
  let user: TestUser;
  let dir: string;
  let home: string;
  let hub: string;
  let homeToml: string;
  let hubToml: string;
  let sent: string;
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...process.env, MAILBAG_FAULT: '', FAKE_SENDMAIL_DIR: sent, ...extra });
  const asRoot = (args: string[], input = '', extra: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
    run(process.execPath, [mailbag, ...args], { input, env: env(extra), timeoutMs: 60_000 });
  const asOwner = (args: string[], input = ''): Promise<RunResult> =>
    run(process.execPath, [mailbag, ...args], { input, env: env(), uid: user.uid, gid: user.gid, timeoutMs: 60_000 });
  const message = (n: number): string => `Subject: message ${n}\n\nbody ${n}\n`;
  const delivered = (): number => readdirSync(sent).filter((n) => n.endsWith('.stdin')).length;

  beforeAll(() => {
    user = ensureTestUser();
    dir = makeSharedTempDir('admin-owner');
    // both spools are empty directories of the user, as docs/setup.md makes them: the
    // first command (as root) lays them out
    home = makeOwnedDir(join(dir, 'home'), user);
    hub = makeOwnedDir(join(dir, 'hub'), user);
    sent = makeOwnedDir(join(dir, 'sent'), user);
    hubToml = join(dir, 'hub.toml');
    homeToml = join(dir, 'home.toml');
    writeFileSync(hubToml, [
      'site = "hub"', `spool = ${JSON.stringify(hub)}`,
      '[delivery]', `sendmail = ${JSON.stringify(fakeSendmail)}`, 'mta = "sendmail"',
      '[peers.home]', 'accept = ["rmail"]', '',
    ].join('\n'), { mode: 0o644 });
    const serve = [process.execPath, mailbag, 'serve', '--peer', 'home', '--config', hubToml];
    writeFileSync(homeToml, [
      'site = "home"', `spool = ${JSON.stringify(home)}`,
      '[delivery]', `sendmail = ${JSON.stringify(fakeSendmail)}`, 'mta = "sendmail"',
      '[peers.hub]', 'transport = "command"', `command = ${JSON.stringify(serve)}`, '',
    ].join('\n'), { mode: 0o644 });
  });

  afterAll(() => {
    if (dir) removeTempDir(dir);
  });

  it('enqueue, sync, run, dispatch, status and failed as root leave every file the owner\'s, and the owner\'s next runs work', async () => {
    const q = await asRoot(['enqueue', 'hub', '--config', homeToml, '-f', 's@home.example', '--', 'r@hub.example'], message(1), { MAILBAG_TRACE: '1' });
    expect(q.code, q.stderr).toBe(0);
    // MAILBAG_TRACE says who it became
    const m = TRACE.exec(q.stderr);
    expect(m, q.stderr).not.toBeNull();
    expect(m!.slice(1, 6)).toEqual([home, String(user.uid), user.name, String(user.uid), String(user.gid)]);
    expect(m![6]!.split(',')).toContain(String(user.gid));
    // a session as root: home's side switches; hub's serve is its child, the user already
    const s = await asRoot(['sync', 'hub', '--config', homeToml]);
    expect(s.code, s.stdout.toString() + s.stderr).toBe(0);
    expect(delivered()).toBe(1);
    // a job queued on the hub for home, the runner and the queue readers as root
    const h = await asRoot(['enqueue', 'home', '--config', hubToml, '-f', 's@hub.example', '--', 'r@home.example'], message(2));
    expect(h.code, h.stderr).toBe(0);
    const out: string[] = [];
    for (const args of [['run', '--config', hubToml], ['run', '--config', homeToml], ['status', '--config', hubToml], ['failed', '--config', homeToml], ['dispatch', '--config', homeToml], ['sync', 'hub', '--config', homeToml]]) {
      const r = await asRoot(args);
      out.push(`${args.join(' ')}: ${r.stdout.toString()}${r.stderr}`);
      expect(r.code, out.join('\n')).toBe(0);
    }
    // the second sync brought hub's job to home, whose run step handed it to sendmail
    expect(delivered(), out.join('\n')).toBe(2);
    expect(notOwnedBy(home, user.uid)).toEqual([]);
    expect(notOwnedBy(hub, user.uid)).toEqual([]);
    expect(notOwnedBy(sent, user.uid)).toEqual([]);
    // the owner carries on where root left off (before: 4.3.0 … EACCES until a chown -R)
    const q2 = await asOwner(['enqueue', 'hub', '--config', homeToml, '-f', 's@home.example', '--', 'r@hub.example'], message(3));
    expect(q2.code, q2.stderr).toBe(0);
    const s2 = await asOwner(['sync', 'hub', '--config', homeToml]);
    expect(s2.code, s2.stdout.toString() + s2.stderr).toBe(0);
    const r2 = await asOwner(['run', '--config', hubToml]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(delivered()).toBe(3);
    const st = await asOwner(['status', '--config', homeToml]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout.toString()).toMatch(/^hub\s+-\s+-\s+-/m);
  }, 180_000);

  it('a spool of a uid without an account: that uid and the spool\'s group, nothing else', async () => {
    const spool = join(dir, 'numeric');
    await Spool.open(spool, { create: true });
    const own = (p: string): void => {
      chownSync(p, 54321, 54322);
      if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) own(join(p, n));
    };
    own(spool);
    const toml = join(dir, 'numeric.toml');
    writeFileSync(toml, `site = "num"\nspool = ${JSON.stringify(spool)}\n[peers.hub]\nhost = "hub.invalid"\n`, { mode: 0o644 });
    const q = await asRoot(['enqueue', 'hub', '--config', toml, '-f', 's@x.example', '--', 'r@y.example'], message(4), { MAILBAG_TRACE: '1' });
    expect(q.code, q.stderr).toBe(0);
    expect(q.stderr).toContain(`the spool ${spool} belongs to uid 54321: now running as uid 54321, gid 54322, groups 54322`);
    expect(notOwnedBy(spool, 54321)).toEqual([]);
  }, 60_000);

  it('a spool not made yet in the user\'s directory is made as the user, not as root', async () => {
    // a spool in the account's home (the hub's account has one): root's first command
    // lays it out as the owner of the directory it goes in
    const parent = makeOwnedDir(join(dir, 'account-home'), user, 0o755);
    const spool = join(parent, 'spool');
    const toml = join(dir, 'new-spool.toml');
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(spool)}\n[peers.hub]\nhost = "hub.invalid"\n`, { mode: 0o644 });
    const q = await asRoot(['enqueue', 'hub', '--config', toml, '-f', 's@x.example', '--', 'r@y.example'], message(7), { MAILBAG_TRACE: '1' });
    expect(q.code, q.stderr).toBe(0);
    expect(q.stderr).toContain(`the spool ${spool} belongs to uid ${user.uid} (${user.name}): now running as uid ${user.uid}`);
    expect(readdirSync(join(spool, 'out', 'hub'))).toHaveLength(1);
    expect(notOwnedBy(spool, user.uid)).toEqual([]);
    const q2 = await asOwner(['enqueue', 'hub', '--config', toml, '-f', 's@x.example', '--', 'r@y.example'], message(8));
    expect(q2.code, q2.stderr).toBe(0);
  }, 60_000);

  it('a spool whose owner would keep root\'s group (gid 0) is refused: exit 75, one line, nothing queued', async () => {
    // chown 54323 SPOOL leaves the group root's: a uid without an account takes the
    // spool's group, and a process of uid 54323 in group 0 keeps root's group
    const spool = join(dir, 'rootgroup');
    await Spool.open(spool, { create: true });
    const own = (p: string): void => {
      chownSync(p, 54323, 0);
      if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) own(join(p, n));
    };
    own(spool);
    const toml = join(dir, 'rootgroup.toml');
    writeFileSync(toml, `site = "num"\nspool = ${JSON.stringify(spool)}\n[peers.hub]\nhost = "hub.invalid"\n`, { mode: 0o644 });
    for (const args of [['enqueue', 'hub', '--config', toml, '-f', 's@x.example', '--', 'r@y.example'], ['status', '--config', toml]]) {
      const r = await asRoot(args, message(6), { MAILBAG_TRACE: '1' });
      expect(r.code, r.stderr).toBe(75);
      expect(r.stderr).not.toContain('now running as');
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^4\.3\.0 mailbag: .*uid 54323.*root's group \(gid 0: /)]);
    }
    expect(readdirSync(join(spool, 'out'))).toEqual([]);
    expect(notOwnedBy(spool, 54323)).toEqual([]);
  }, 60_000);

  it('a configuration only root can read: the owner cannot read it either, and the error says why root read as the owner', async () => {
    const toml = join(dir, 'secret.toml');
    writeFileSync(toml, `site = "home"\nspool = ${JSON.stringify(home)}\n`, { mode: 0o600 });
    const r = await asRoot(['status', '--config', toml]);
    expect(r.code, r.stderr).toBe(75);
    expect(r.stderr.trim()).toBe(`4.3.5 mailbag: ${toml}: cannot read the configuration file: permission denied (read as uid ${user.uid} (${user.name}), the owner of the spool ${home}, which this command started as root became)`);
  }, 60_000);

  it('a spool root owns stays root\'s: no switch, no line', async () => {
    const spool = join(dir, 'rootspool');
    const toml = join(dir, 'root.toml');
    writeFileSync(toml, `site = "r"\nspool = ${JSON.stringify(spool)}\n[peers.hub]\nhost = "hub.invalid"\n`, { mode: 0o644 });
    const q = await asRoot(['enqueue', 'hub', '--config', toml, '-f', 's@x.example', '--', 'r@y.example'], message(5), { MAILBAG_TRACE: '1' });
    expect(q.code, q.stderr).toBe(0);
    expect(q.stderr).not.toContain('started as root');
    expect(notOwnedBy(spool, 0)).toEqual([]);
  }, 60_000);
});
