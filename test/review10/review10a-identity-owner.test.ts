// review10a: the identity file's mode check (beeaaa9, 34bc5b1, cc0eedd) for a key that is
// not the running user's: OpenSSH's sshkey_perm_ok checks the mode only when the file's
// owner is getuid(), so ssh(1) run by root (or by a service user) uses a key owned by
// another user whatever its group/other bits (an admin's key file shared read-only to a
// mail group, root running a one-off sync). mailbag must do the same: no refusal, logs in.
// Real sshd (test/helpers/sshd), real ssh(1) as the reference. Runs as root (chown).
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sshTransport } from '../../lib/transport/index.js';
import { makeKey, type KeyFiles } from '../helpers/ssh-keys.js';
import { roundTrip } from '../helpers/ssh-link.js';
import { haveSshd, startSshd, type Sshd } from '../helpers/sshd.js';

const root = process.getuid?.() === 0;
const present = haveSshd() && root;
const dir = mkdtempSync(join(tmpdir(), 'mailbag-review10a-owner-'));
let sshd: Sshd;
let key: KeyFiles;
const ECHO = 'exec cat';

describe.runIf(present)('an identity file owned by another user', () => {
  beforeAll(async () => {
    chmodSync(dir, 0o755);
    key = makeKey(dir, 'id_owner', 'ed25519');
    sshd = await startSshd({ authorizedKeys: [{ publicKey: key.publicKey, command: ECHO }] });
  });
  afterAll(async () => {
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('0644 and owned by nobody (65534): ssh(1) as root uses it, and so does mailbag', async () => {
    const theirs = join(dir, 'id_theirs');
    copyFileSync(key.privatePath, theirs);
    chownSync(theirs, 65534, 65534);
    chmodSync(theirs, 0o644);
    const ssh = spawnSync('ssh', [
      '-F', '/dev/null', '-p', String(sshd.port), '-i', theirs, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
      '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'GlobalKnownHostsFile=/dev/null', `${sshd.user}@127.0.0.1`, 'x',
    ], { encoding: 'utf8', timeout: 20_000, input: 'ssh-ok' });
    expect(ssh.stderr).not.toMatch(/UNPROTECTED/);
    expect(ssh.status, ssh.stderr).toBe(0);
    expect(ssh.stdout).toBe('ssh-ok');
    const link = await sshTransport({
      host: '127.0.0.1', port: sshd.port, user: sshd.user, identity: theirs, knownHosts: sshd.knownHostsFile,
      remoteCommand: 'mailbag serve --peer home', connectTimeoutMs: 10_000, keepaliveMs: 5000,
    }).connect();
    expect((await roundTrip(link, Buffer.from('mailbag-ok'))).toString()).toBe('mailbag-ok');
    expect((await link.done).ok).toBe(true);
  });
});
