// sec11: what `mailbag serve` (an authorized_keys forced command) hands on from its
// environment. sshd puts the command the client asked for into $SSH_ORIGINAL_COMMAND: a
// string the peer chooses byte for byte (its remote_command). docs/security.md: "the
// client's own command is ignored (… $SSH_ORIGINAL_COMMAND, which mailbag never reads)".
// mailbag does not read it, but serve's run step (runReceivedJobs(…, io.env)) gives the
// whole environment to every program it runs for the peer's jobs: delivery.sendmail and
// the admin's `actions` (scripts, where a peer-chosen variable has no business). Seen
// here with real sshd and `mailbag sync` (main at 23cf188): the hub's sendmail ran with
// SSH_ORIGINAL_COMMAND='mailbag serve --peer home; $(touch /tmp/pwned)' — the peer's
// text. The forced command, the peer identity and the whitelist hold (checked too).
// req-sec11.md R4, applied.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey } from '../helpers/ssh-keys.js';
import { haveSshd, serveCommand, startSshd, type Sshd } from '../helpers/sshd.js';
import { mailbagBin } from '../unit/lmtp/lmtpd-process.js';

const present = haveSshd();
const dir = mkdtempSync(join(tmpdir(), 'mailbag-sec11-env-'));
const PEER_TEXT = 'mailbag serve --peer home; $(touch /tmp/pwned) --peer other --config /tmp/evil.toml';
let sshd: Sshd | undefined;
let sync: ReturnType<typeof spawnSync> | undefined;
const envLog = join(dir, 'sendmail-env');
const argvLog = join(dir, 'sendmail-argv');

describe.runIf(present)('sec11: serve as a forced command, the peer choosing SSH_ORIGINAL_COMMAND', () => {
  beforeAll(async () => {
    chmodSync(dir, 0o755);
    const key = makeKey(dir, 'id_home', 'ed25519');
    const fake = join(dir, 'sendmail');
    // records argv and environment, takes the message
    writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > ${argvLog}\nenv > ${envLog}\ncat > /dev/null\nexit 0\n`, { mode: 0o755 });
    const hubToml = join(dir, 'hub.toml');
    writeFileSync(hubToml, `site = "hub"\nspool = "${dir}/hub-spool"\n[delivery]\nsendmail = "${fake}"\nmta = "sendmail"\n[peers.home]\naccept = ["rmail"]\n[peers.other]\naccept = ["rmail"]\n`);
    sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: serveCommand('home', hubToml) }] });
    const homeToml = join(dir, 'home.toml');
    writeFileSync(
      homeToml,
      `site = "home"\nspool = "${dir}/home-spool"\n[peers.hub]\nhost = "127.0.0.1"\nport = ${sshd.port}\nuser = "${sshd.user}"\nidentity = "${key.privatePath}"\nknown_hosts = "${sshd.knownHostsFile}"\nremote_command = ${JSON.stringify(PEER_TEXT)}\n`,
    );
    const enq = spawnSync(process.execPath, [mailbagBin, 'enqueue', 'hub', '--config', homeToml, '-f', 'a@home.test', '--', 'b@hub.test'], { input: 'Subject: t\n\nbody\n', encoding: 'utf8', timeout: 30_000 });
    expect(enq.status, enq.stderr).toBe(0);
    sync = spawnSync(process.execPath, [mailbagBin, 'sync', 'hub', '--config', homeToml], { encoding: 'utf8', timeout: 60_000 });
  }, 120_000);
  afterAll(async () => {
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the forced command holds: the job went to in/home and was delivered, nothing ran from the peer text', () => {
    expect(sync!.status, `${sync!.stderr}`).toBe(0);
    expect(readFileSync(argvLog, 'utf8').split('\n')).toEqual(['-oi', '-f', 'a@home.test', '--', 'b@hub.test', '']);
    expect(existsSync('/tmp/pwned')).toBe(false);
  });

  // req-sec11.md R4
  it('the programs run for the peer do not get the peer-chosen SSH_ORIGINAL_COMMAND', () => {
    const env = readFileSync(envLog, 'utf8');
    expect(env).not.toContain('SSH_ORIGINAL_COMMAND');
  });
});
