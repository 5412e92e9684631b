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
// it.fails until req-sec11.md R6.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  // req-sec11.md R6
  it.fails('mailbag run as root refuses it (75, as an o+w file is) and runs none of its programs', () => {
    const r = spawnSync(process.execPath, [mailbagBin, 'run', '--config', config], { encoding: 'utf8', timeout: 60_000 });
    const ran = existsSync(ranAs) ? readFileSync(ranAs, 'utf8').trim() : undefined;
    expect(ran).toBeUndefined(); // today: '0'
    expect(r.status).toBe(75);
    expect(r.stderr).toMatch(/owned by uid 65534/);
  });
});
