// sec11: root and a configuration file another user owns. The configuration names the
// programs mailbag runs (delivery.sendmail, actions, a peer's command) and the spool, whose
// owner a command started as root becomes (lib/spool/owner.ts). readConfigFile refuses a
// file every user may write, nothing else: a file owned by a non-root user (or writable
// by its group) is taken as root's. Its writer names a root-owned spool, so root stays
// root, and a sendmail of theirs: seen on 23cf188 with a real user, /tmp/…/m.toml owned
// by sec11own (0644), `mailbag run` as root ran its delivery.sendmail as uid=0(root).
// OpenSSH refuses the same for its client configuration ("Bad owner or permissions").
// docs/setup.md makes /etc/mailbag root's, but also has the admin chown files in it to
// mailbag (the key); a `chown -R mailbag: /etc/mailbag` hands mailbag root.
// it.fails until req-sec11.md R6; applied: loadConfig's checkRootsFile.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { ConfigError } from '../../lib/errors.js';
import { Spool } from '../../lib/spool/index.js';
import { mailbagBin } from '../unit/lmtp/lmtpd-process.js';

const root = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-sec11-rootcfg-'));
const ranAs = join(dir, 'ran-as');
let config: string;

describe.runIf(root)('sec11: root and a configuration file owned by another user', () => {
  beforeAll(async () => {
    chmodSync(dir, 0o755);
    const prog = join(dir, 'their-sendmail');
    writeFileSync(prog, `#!/bin/sh\nid -u > ${ranAs}\ncat > /dev/null\nexit 0\n`, { mode: 0o755 });
    const spool = join(dir, 'spool');
    config = join(dir, 'm.toml');
    writeFileSync(config, `site = "home"\nspool = "${spool}"\n[delivery]\nsendmail = "${prog}"\nmta = "sendmail"\n[peers.hub]\nhost = "127.0.0.1"\naccept = ["rmail"]\n`);
    chownSync(config, 65534, 65534); // nobody's: they may rewrite it at will
    chmodSync(config, 0o644);
    await Spool.open(spool, { create: true });
    const inDir = join(spool, 'in', 'hub');
    mkdirSync(inDir, { recursive: true, mode: 0o700 });
    const id = '01a2071e3405cfg1';
    const header = { id, from: 'hub', to: 'home', created: new Date().toISOString(), command: 'rmail', args: ['b@y.test'], sender: 's@x.test', recipients: ['b@y.test'] };
    writeFileSync(join(inDir, id), `mailbag-job 1\n${JSON.stringify(header)}\nFrom s Mon Nov 23 06:35:49 2026\nSubject: t\n\nx\n`, { mode: 0o600 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // req-sec11.md R6 (applied by apply11)
  it('mailbag run as root refuses it (75, as an o+w file is) and runs none of its programs', () => {
    const r = spawnSync(process.execPath, [mailbagBin, 'run', '--config', config], { encoding: 'utf8', timeout: 60_000 });
    const ran = existsSync(ranAs) ? readFileSync(ranAs, 'utf8').trim() : undefined;
    expect(ran).toBeUndefined(); // today: '0'
    expect(r.status).toBe(75);
    expect(r.stderr).toMatch(/owned by uid 65534/);
  });

  // apply11: the rest of R6's rule, in-process (not armed: root stays root, so only root's
  // files are taken) and, last, setup.md's case of a file of the spool's owner
  const cfgText = (spool: string): string => `site = "home"\nspool = "${spool}"\n[delivery]\nsendmail = "/usr/sbin/sendmail"\n`;
  function place(sub: string, dirMode: number, dirUid: number, fileMode = 0o644): string {
    const d = join(dir, sub);
    mkdirSync(d);
    chmodSync(d, dirMode);
    chownSync(d, dirUid, dirUid);
    const f = join(d, 'm.toml');
    writeFileSync(f, cfgText(join(dir, 'spool')));
    chmodSync(f, fileMode);
    return f;
  }
  function loadError(path: string): string {
    try {
      loadConfig({ path, env: {} });
      return 'loaded';
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).exitCode).toBe(75);
      return (err as Error).message;
    }
  }

  it('refuses a file its group may write (0664), and one in a directory another user owns or every user may write', () => {
    expect(loadError(place('g', 0o755, 0, 0o664))).toMatch(/its group or every user may write the configuration file \(mode 0664\).*chmod go-w /);
    expect(loadError(place('dw', 0o777, 0))).toMatch(/may write the configuration file's directory .*\/dw \(mode 0777\)/);
    expect(loadError(place('dg', 0o775, 0))).toMatch(/directory .*\/dg \(mode 0775\)/);
    expect(loadError(place('du', 0o755, 65534))).toMatch(/directory .*\/du is owned by uid 65534/);
  });

  it('through a symbolic link, the directory the file really is in counts too', () => {
    const target = place('lt', 0o755, 65534);
    const link = join(dir, 'lk');
    mkdirSync(link, { mode: 0o755 });
    symlinkSync(target, join(link, 'm.toml'));
    expect(loadError(join(link, 'm.toml'))).toMatch(/directory .*\/lt is owned by uid 65534/);
  });

  it("takes root's file 0644 or 0600 in root's directory, in a sticky one every user may write (/tmp), and /dev/null", () => {
    expect(loadError(place('ok', 0o755, 0))).toBe('loaded');
    expect(loadError(place('ok6', 0o700, 0, 0o600))).toBe('loaded');
    expect(loadError(place('st', 0o1777, 0))).toBe('loaded');
    expect(loadConfig({ path: '/dev/null', env: {}, packageRoot: dir }).file).toBe('/dev/null');
  });

  it("a command started as root takes a file of the spool's owner (setup.md: files in /etc/mailbag chowned to mailbag), and becomes that owner", async () => {
    const spool = join(dir, 'nobody-spool');
    await Spool.open(spool, { create: true });
    const chownAll = (p: string): void => {
      chownSync(p, 65534, 65534);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownAll(join(p, e));
    };
    chownAll(spool);
    const d = join(dir, 'etc-mailbag');
    mkdirSync(d, { mode: 0o755 });
    const f = join(d, 'mailbag.toml');
    writeFileSync(f, cfgText(spool), { mode: 0o644 });
    chownSync(f, 65534, 65534);
    const r = spawnSync(process.execPath, [mailbagBin, 'status', '--config', f], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/configuration file/);
    expect(r.status, r.stderr).toBe(0);
    // the same file is refused when the spool is root's: root would stay root
    writeFileSync(f, cfgText(join(dir, 'spool')));
    const r2 = spawnSync(process.execPath, [mailbagBin, 'status', '--config', f], { encoding: 'utf8', timeout: 60_000 });
    expect(r2.status).toBe(75);
    expect(r2.stderr).toMatch(/owned by uid 65534 \(nobody\), not by root,/);
  });
});
