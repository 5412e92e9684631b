// The transports against a real OpenSSH sshd on 127.0.0.1 with keys made by ssh-keygen
// and authorized_keys forced commands: what users run in production.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandTransport, sshTransport, type SshOptions } from '../../lib/transport/index.js';
import { startCutProxy } from '../helpers/cut-proxy.js';
import { makeKey, type KeyFiles } from '../helpers/ssh-keys.js';
import { privateFileIn, refused, roundTrip } from '../helpers/ssh-link.js';
import { haveSshd, serveCommand, shellQuote, startSshd, type Sshd } from '../helpers/sshd.js';

const present = haveSshd();
const dir = mkdtempSync(join(tmpdir(), 'mailbag-sshd-test-'));
let sshd: Sshd;
const keys: Record<string, KeyFiles> = {};
// the forced command: reports what the client asked for on stderr, then echoes stdin
const ECHO = `printf 'asked=%s\\n' "$SSH_ORIGINAL_COMMAND" >&2; exec cat`;

const known = privateFileIn(dir);

function opts(over: Partial<SshOptions> = {}): SshOptions {
  return {
    host: '127.0.0.1',
    port: sshd.port,
    user: sshd.user,
    identity: keys.ed25519!.privatePath,
    knownHosts: sshd.knownHostsFile,
    remoteCommand: 'mailbag serve --peer home',
    connectTimeoutMs: 10_000,
    keepaliveMs: 5000,
    ...over,
  };
}


describe.runIf(present)('transports against a real OpenSSH sshd', () => {
  beforeAll(async () => {
    for (const t of ['ed25519', 'ecdsa', 'rsa'] as const) keys[t] = makeKey(dir, `id_${t}`, t);
    keys.failing = makeKey(dir, 'id_failing');
    keys.stranger = makeKey(dir, 'id_stranger');
    sshd = await startSshd({
      authorizedKeys: [
        ...(['ed25519', 'ecdsa', 'rsa'] as const).map((t) => ({ publicKey: keys[t]!.publicKey, command: ECHO })),
        { publicKey: keys.failing!.publicKey, command: `echo '4.3.0 spool is locked' >&2; exit 75` },
      ],
    });
  });

  afterAll(async () => {
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ssh2 runs the forced command, whatever command the client asked for, and carries 16 MB both ways', async () => {
    const link = await sshTransport(opts({ remoteCommand: 'rm -rf /tmp/nothing-here' })).connect();
    const data = randomBytes(16 * 1024 * 1024);
    expect((await roundTrip(link, data)).equals(data)).toBe(true);
    const end = await link.done;
    expect(end).toMatchObject({ ok: true, exitCode: 0 });
    expect(end.stderr).toBe('asked=rm -rf /tmp/nothing-here');
  });

  it.each(['ecdsa', 'rsa'])('authenticates with an ssh-keygen %s key', async (t) => {
    const link = await sshTransport(opts({ identity: keys[t]!.privatePath })).connect();
    expect((await roundTrip(link, Buffer.from(t))).toString()).toBe(t);
    expect((await link.done).ok).toBe(true);
  });

  it('reports the forced command exit status and its stderr line', async () => {
    const link = await sshTransport(opts({ identity: keys.failing!.privatePath })).connect();
    await roundTrip(link, Buffer.alloc(0));
    const end = await link.done;
    expect(end.exitCode).toBe(75);
    expect(end.stderr).toBe('4.3.0 spool is locked');
    expect(end.error?.message).toContain('4.3.0 spool is locked');
  });

  it('accepts known_hosts hashed by ssh-keygen -H', async () => {
    const file = known('hashed', readFileSync(sshd.knownHostsFile, 'utf8'));
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    expect(readFileSync(file, 'utf8')).not.toContain('127.0.0.1');
    const link = await sshTransport(opts({ knownHosts: file })).connect();
    expect((await roundTrip(link, Buffer.from('h'))).toString()).toBe('h');
  });

  it('accepts a known_hosts written by ssh-keyscan', async () => {
    const scanned = execFileSync('ssh-keyscan', ['-p', String(sshd.port), '-t', 'ed25519', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 15_000 }).toString();
    const link = await sshTransport(opts({ knownHosts: known('scanned', scanned) })).connect();
    expect((await roundTrip(link, Buffer.from('s'))).toString()).toBe('s');
  });

  it('asks the server for the key type known_hosts has (ecdsa only)', async () => {
    const link = await sshTransport(opts({ knownHosts: known('ecdsa-only', `${sshd.knownHostsLines[1]}\n`) })).connect();
    expect((await roundTrip(link, Buffer.from('e'))).toString()).toBe('e');
  });

  it('refuses an unknown host, a changed key and a revoked key', async () => {
    const unknown = await refused(opts({ knownHosts: known('empty', '') }));
    expect(unknown.code).toBe('host-key');
    expect(unknown.message).toContain(`ssh-keyscan -p ${sshd.port}`);
    const other = makeKey(dir, 'other_host').publicKey.split(' ').slice(0, 2).join(' ');
    const changed = await refused(opts({ knownHosts: known('changed', `[127.0.0.1]:${sshd.port} ${other}\n`) }));
    expect(changed.code).toBe('host-key');
    expect(changed.message).toContain('HOST KEY CHANGED');
    const ed = sshd.hostPublicKeys[0]!.split(' ').slice(0, 2).join(' ');
    const revoked = await refused(opts({ knownHosts: known('revoked', `${readFileSync(sshd.knownHostsFile, 'utf8')}@revoked [127.0.0.1]:* ${ed}\n`) }));
    expect(revoked.code).toBe('host-key');
    expect(revoked.message).toContain('@revoked');
  });

  it('refuses a key that is not in authorized_keys', async () => {
    const err = await refused(opts({ identity: keys.stranger!.privatePath }));
    expect(err.code).toBe('auth');
  });

  it('refuses an identity file others may read, as ssh(1) does; the same key at 0600 is used', async () => {
    const open = join(dir, 'id_open');
    copyFileSync(keys.ed25519!.privatePath, open);
    chmodSync(open, 0o644);
    // what OpenSSH's ssh(1) does with it against the same sshd: ignores the key, fails to log in
    const ssh = spawnSync('ssh', [
      '-F', '/dev/null', '-p', String(sshd.port), '-i', open, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
      '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'GlobalKnownHostsFile=/dev/null', `${sshd.user}@127.0.0.1`, 'true',
    ], { encoding: 'utf8', timeout: 20_000, input: '' });
    expect(ssh.status).toBe(255);
    expect(ssh.stderr).toMatch(/UNPROTECTED PRIVATE KEY FILE/);
    const err = await refused(opts({ identity: open }));
    expect(err.code).toBe('auth');
    expect(err.message).toBe(`the identity file ${open} is open to others (permissions 0644): ssh refuses such a private key, and so does mailbag; chmod 600 ${open}`);
    chmodSync(open, 0o640);
    expect((await refused(opts({ identity: open }))).message).toContain('(permissions 0640)');
    chmodSync(open, 0o600);
    const link = await sshTransport(opts({ identity: open })).connect();
    expect((await roundTrip(link, Buffer.from('ok'))).toString()).toBe('ok');
    expect((await link.done).ok).toBe(true);
  });

  it('restrict: no port forwarding for a peer key', async () => {
    const c = new Client();
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve());
      c.once('error', reject);
      c.connect({ host: '127.0.0.1', port: sshd.port, username: sshd.user, privateKey: readFileSync(keys.ed25519!.privatePath) });
    });
    const err = await new Promise<Error | undefined>((resolve) => c.forwardOut('127.0.0.1', 1, '127.0.0.1', sshd.port, (e) => resolve(e)));
    c.end();
    expect(err).toBeInstanceOf(Error);
  });

  it('ssh-agent: agent = true with the key loaded', async () => {
    const sock = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
      execFileSync('ssh-add', ['-q', keys.rsa!.privatePath], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore', timeout: 10_000 });
      const link = await sshTransport(opts({ identity: undefined, agent: true, env: { SSH_AUTH_SOCK: sock } })).connect();
      expect((await roundTrip(link, Buffer.from('via agent'))).toString()).toBe('via agent');
    } finally {
      agent.kill();
    }
  });

  it('an identity open to others with agent = true: left out as ssh(1) does, and the agent holding the key authenticates', async () => {
    const sock = join(dir, 'agent-open.sock');
    const open = join(dir, 'id_open_agent');
    copyFileSync(keys.ed25519!.privatePath, open);
    chmodSync(open, 0o644);
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
      execFileSync('ssh-add', ['-q', keys.ed25519!.privatePath], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore', timeout: 10_000 });
      const link = await sshTransport(opts({ identity: open, agent: true, env: { SSH_AUTH_SOCK: sock } })).connect();
      expect((await roundTrip(link, Buffer.from('agent, file left out'))).toString()).toBe('agent, file left out');
      // an agent without the key: refused, the message says why the file was left out
      const empty = join(dir, 'agent-open-empty.sock');
      const agent2 = spawn('ssh-agent', ['-D', '-a', empty], { stdio: 'ignore' });
      try {
        for (let i = 0; i < 200 && !existsSync(empty); i++) await new Promise((r) => setTimeout(r, 25));
        await expect(sshTransport(opts({ identity: open, agent: true, env: { SSH_AUTH_SOCK: empty } })).connect()).rejects.toMatchObject({ code: 'auth', message: expect.stringContaining(`for the open to others (0644), left out as ssh(1) does, ${open}`) });
      } finally {
        agent2.kill();
      }
    } finally {
      agent.kill();
    }
  });

  it('an identity with a passphrase and agent = true: the agent (holding that key) authenticates, as docs/security.md advises', async () => {
    const sock = join(dir, 'agent-enc.sock');
    const encrypted = join(dir, 'id_ecdsa_encrypted');
    copyFileSync(keys.ecdsa!.privatePath, encrypted);
    chmodSync(encrypted, 0o600);
    execFileSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', 'secret words', '-f', encrypted], { stdio: 'ignore', timeout: 10_000 });
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
      execFileSync('ssh-add', ['-q', keys.ecdsa!.privatePath], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore', timeout: 10_000 });
      const link = await sshTransport(opts({ identity: encrypted, agent: true, env: { SSH_AUTH_SOCK: sock } })).connect();
      expect((await roundTrip(link, Buffer.from('key kept encrypted'))).toString()).toBe('key kept encrypted');
      // an agent without that key: refused, and the message says the identity was left to the agent
      const empty = join(dir, 'agent-empty.sock');
      const agent2 = spawn('ssh-agent', ['-D', '-a', empty], { stdio: 'ignore' });
      try {
        for (let i = 0; i < 200 && !existsSync(empty); i++) await new Promise((r) => setTimeout(r, 25));
        await expect(sshTransport(opts({ identity: encrypted, agent: true, env: { SSH_AUTH_SOCK: empty } })).connect()).rejects.toMatchObject({ code: 'auth', message: expect.stringContaining(`ssh-agent ${empty} for the passphrase-protected ${encrypted}`) });
      } finally {
        agent2.kill();
      }
      // without the agent the passphrase is still refused, with the advice
      await expect(sshTransport(opts({ identity: encrypted })).connect()).rejects.toMatchObject({ code: 'auth', message: expect.stringMatching(/passphrase.*agent = true/) });
    } finally {
      agent.kill();
    }
  });

  it('command transport: OpenSSH ssh(1) to the same sshd', async () => {
    const argv = [
      'ssh', '-F', '/dev/null', '-p', String(sshd.port), '-i', keys.ed25519!.privatePath,
      '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'GlobalKnownHostsFile=/dev/null',
      `${sshd.user}@127.0.0.1`, 'mailbag', 'serve', '--peer', 'home',
    ];
    const link = await commandTransport({ argv }).connect();
    const data = randomBytes(2 * 1024 * 1024);
    expect((await roundTrip(link, data)).equals(data)).toBe(true);
    const end = await link.done;
    expect(end.ok).toBe(true);
    expect(end.stderr).toBe('asked=mailbag serve --peer home');
    // and ssh(1)'s own host key refusal is read as such
    argv[argv.indexOf(`UserKnownHostsFile=${sshd.knownHostsFile}`)] = `UserKnownHostsFile=${known('none', '')}`;
    const bad = await commandTransport({ argv }).connect();
    await roundTrip(bad, Buffer.alloc(0));
    expect((await bad.done).error?.code).toBe('host-key');
  });

  it('a link cut by the proxy ends with a link error, not a clean end', async () => {
    const proxy = await startCutProxy({ target: { host: '127.0.0.1', port: sshd.port }, cutAfter: 200_000, direction: 'up' });
    try {
      const link = await sshTransport(opts({ port: proxy.port, knownHosts: known('proxy', `[127.0.0.1]:${proxy.port} ${sshd.hostPublicKeys[0]!.split(' ').slice(0, 2).join(' ')}\n`) })).connect();
      const data = randomBytes(4 * 1024 * 1024);
      let got = 0;
      const reading = (async () => {
        try {
          for await (const c of link.input) got += (c as Buffer).length;
        } catch {
          // the cut
        }
      })();
      link.output.on('error', () => {});
      link.output.end(data);
      await reading;
      const end = await link.done;
      expect(end.ok).toBe(false);
      expect(['link', 'unreachable']).toContain(end.error?.code);
      expect(got).toBeLessThan(data.length);
      expect(proxy.cuts).toBe(1);
    } finally {
      await proxy.close();
    }
  });
});

describe('forced-command helpers', () => {
  it('shellQuote survives the shell sshd runs a forced command with', () => {
    const args = ['plain', 'a b', "it's", '$HOME', '`x`', '"q"', 'semi;colon', ''];
    const out = execFileSync('sh', ['-c', `printf '%s|' ${args.map(shellQuote).join(' ')}`]).toString();
    expect(out).toBe(`${args.join('|')}|`);
  });

  it('serveCommand runs this checkout\'s mailbag with this node', () => {
    const cmd = serveCommand('home', '/tmp/x y/mailbag.toml', { MAILBAG_FAULT: 'mid-bag' });
    expect(cmd.startsWith(`MAILBAG_FAULT=mid-bag ${process.execPath} `)).toBe(true);
    expect(cmd).toContain("serve --peer home --config '/tmp/x y/mailbag.toml'");
  });
});
