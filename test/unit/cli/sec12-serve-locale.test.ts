// sec12: the peer's locale does not reach the programs `mailbag serve` runs for its jobs.
// Debian's sshd_config has `AcceptEnv LANG LC_*` and Debian's ssh_config `SendEnv LANG
// LC_*`: a peer dialling with transport = "command" and the system ssh hands its own
// LANG to the hub's sshd, and with SetEnv any LC_* it likes. sshd sets them in the
// environment of the forced command, and serve's run step gave that environment to
// delivery.sendmail and the actions: the hub's sendmail ran in the locale the peer chose
// (seen with real sshd and ssh at 3aba050: LANG, LC_ALL and LC_MESSAGES, the peer's
// values). Now serve drops LANG, LANGUAGE and LC_* for them (docs/security.md).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerFreeEnv } from '../../../lib/cli/serve.js';
import { makeKey } from '../../helpers/ssh-keys.js';
import { haveSshd, serveCommand, startSshd, type Sshd } from '../../helpers/sshd.js';
import { need } from '../../helpers/need.js';
import { mailbagBin } from '../lmtp/lmtpd-process.js';

const SSH = '/usr/bin/ssh';
const present = haveSshd() && need('OpenSSH ssh', [SSH], 'apt-get install openssh-client');
const dir = mkdtempSync(join(tmpdir(), 'mailbag-sec12-locale-'));
const envLog = join(dir, 'sendmail-env');
let sshd: Sshd | undefined;
let sync: ReturnType<typeof spawnSync> | undefined;

describe('sec12: peerFreeEnv', () => {
  it('drops SSH_ORIGINAL_COMMAND, LANG, LANGUAGE and every LC_*, keeps the rest', () => {
    const env = { PATH: '/usr/bin:/bin', HOME: '/var/lib/mailbag', MAIL_CONFIG: '/etc/postfix', SSH_ORIGINAL_COMMAND: 'x', LANG: 'de_DE.UTF-8', LANGUAGE: 'de', LC_ALL: 'tr_TR.UTF-8', LC_CTYPE: 'C.UTF-8', LC_MESSAGES: 'fr_FR', SSH_CONNECTION: '127.0.0.1 1 127.0.0.1 22' };
    expect(peerFreeEnv(env)).toEqual({ PATH: '/usr/bin:/bin', HOME: '/var/lib/mailbag', MAIL_CONFIG: '/etc/postfix', SSH_CONNECTION: '127.0.0.1 1 127.0.0.1 22' });
    expect(env.LANG).toBe('de_DE.UTF-8');
  });
});

describe.runIf(present)('sec12: serve under real sshd with AcceptEnv LANG LC_*, the peer dialling with ssh SendEnv/SetEnv', () => {
  beforeAll(async () => {
    chmodSync(dir, 0o755);
    const key = makeKey(dir, 'id_home', 'ed25519');
    const fake = join(dir, 'sendmail');
    writeFileSync(fake, `#!/bin/sh\nenv > ${envLog}\ncat > /dev/null\nexit 0\n`, { mode: 0o755 });
    const hubToml = join(dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = "${dir}/hub-spool"\n[delivery]\nsendmail = "${fake}"\nmta = "sendmail"\n[peers.home]\naccept = ["rmail"]\n`);
    // Debian's sshd_config line
    sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: serveCommand('home', hubToml) }], config: ['AcceptEnv LANG LC_*'] });
    const command = [
      SSH, '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`,
      '-o', 'IdentitiesOnly=yes', '-i', key.privatePath, '-p', String(sshd.port),
      // Debian's ssh_config line, and SetEnv for the rest
      '-o', 'SendEnv=LANG LC_*', '-o', 'SetEnv=LC_ALL=tr_TR.UTF-8 LC_MESSAGES=de_DE.UTF-8',
      `${sshd.user}@127.0.0.1`, 'mailbag serve',
    ];
    const homeToml = join(dir, 'home.toml');
    writeFileSync(homeToml, `site = "home"\nspool = "${dir}/home-spool"\n[peers.hub]\ncommand = ${JSON.stringify(command)}\n`);
    const enq = spawnSync(process.execPath, [mailbagBin, 'enqueue', 'hub', '--config', homeToml, '-f', 'a@home.test', '--', 'b@hub.test'], { input: 'Subject: t\n\nbody\n', encoding: 'utf8', timeout: 30_000 });
    expect(enq.status, enq.stderr).toBe(0);
    sync = spawnSync(process.execPath, [mailbagBin, 'sync', 'hub', '--config', homeToml], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, LANG: 'de_DE.UTF-8' } });
  }, 120_000);
  afterAll(async () => {
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the job was delivered, and the hub\'s sendmail ran without the peer\'s LANG, LC_ALL, LC_MESSAGES', () => {
    expect(sync!.status, `${sync!.stderr}`).toBe(0);
    const env = readFileSync(envLog, 'utf8');
    // sshd did pass them on to serve: the session's own variables are there
    expect(env).toMatch(/^SSH_CONNECTION=/m);
    expect(env).not.toMatch(/^(LANG|LANGUAGE|LC_[A-Z]+)=/m);
  });
});
