// The ssh2 transport against ssh2's embedded server: host keys (plain, hashed, port
// form, unknown, changed, revoked), client key types, agent, error classification.
import { execFileSync, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateKeyPair, sshTransport, startSshServer, type ExecRequest, type SshOptions, type SshServerHandle } from '../../../lib/transport/index.js';
import { need } from '../../helpers/need.js';
import { privateFileIn, refused, roundTrip } from '../../helpers/ssh-link.js';

const dir = mkdtempSync(join(tmpdir(), 'mailbag-ssh-'));
const client = generateKeyPair('home');
const rsa = utils.generateKeyPairSync('rsa', { bits: 2048, comment: 'rsa' });
const ecdsa = utils.generateKeyPairSync('ecdsa', { bits: 256, comment: 'ecdsa' });
const stranger = generateKeyPair('stranger');
let server: SshServerHandle;
const execs: Omit<ExecRequest, 'link'>[] = [];
let exitWith = 0;

async function echo(req: ExecRequest): Promise<number> {
  execs.push({ peer: req.peer, user: req.user, command: req.command });
  req.link.input.pipe(req.link.output);
  await new Promise((r) => req.link.input.once('end', r));
  return exitWith;
}

const file = privateFileIn(dir);

function opts(over: Partial<SshOptions> = {}): SshOptions {
  return {
    host: '127.0.0.1',
    port: server.port,
    user: 'mailbag',
    privateKey: client.privateKey,
    knownHosts: file('known_hosts', `${server.knownHostsLine}\n`),
    remoteCommand: 'mailbag serve --peer home',
    connectTimeoutMs: 5000,
    keepaliveMs: 1000,
    ...over,
  };
}


beforeAll(async () => {
  server = await startSshServer({
    authorizedKeys: [
      { key: client.publicKey, peer: 'home' },
      { key: rsa.public, peer: 'rsa-peer' },
      { key: ecdsa.public, peer: 'ecdsa-peer' },
    ],
    onExec: echo,
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ssh transport over the embedded server', () => {
  it('runs the remote command and carries bytes both ways, with flow control', async () => {
    const link = await sshTransport(opts()).connect();
    expect(link.describe()).toContain(`mailbag@[127.0.0.1]:${server.port}`);
    const data = randomBytes(8 * 1024 * 1024);
    const back = await roundTrip(link, data);
    expect(back.equals(data)).toBe(true);
    const end = await link.done;
    expect(end).toMatchObject({ ok: true, exitCode: 0 });
    expect(execs.at(-1)).toEqual({ peer: 'home', user: 'mailbag', command: 'mailbag serve --peer home' });
  });

  it.each([
    ['rsa', rsa.private, 'rsa-peer'],
    ['ecdsa', ecdsa.private, 'ecdsa-peer'],
  ])('authenticates with an %s key', async (_t, key, peer) => {
    const link = await sshTransport(opts({ privateKey: key })).connect();
    expect((await roundTrip(link, Buffer.from('hi'))).toString()).toBe('hi');
    expect((await link.done).ok).toBe(true);
    expect(execs.at(-1)?.peer).toBe(peer);
  });

  it('reads the key from an identity file', async () => {
    const link = await sshTransport(opts({ privateKey: undefined, identity: file('id_ed25519', client.privateKey) })).connect();
    expect((await roundTrip(link, Buffer.from('x'))).toString()).toBe('x');
  });

  it('traces each step of the connection when asked (MAILBAG_TRACE), in order', async () => {
    const lines: string[] = [];
    const link = await sshTransport(opts({ trace: (l) => lines.push(l) })).connect();
    expect((await roundTrip(link, Buffer.from('t'))).toString()).toBe('t');
    expect(lines).toEqual([
      `ssh: connecting to [127.0.0.1]:${server.port}`,
      'ssh: TCP connected',
      'ssh: host key ssh-ed25519 ok',
      expect.stringMatching(/^ssh: keys exchanged \([^,]+, ssh-ed25519, [^)]+\)$/),
      'ssh: authenticated',
      'ssh: exec channel open',
    ]);
    // a refused host key is traced as what it is
    const refusedLines: string[] = [];
    const other = generateKeyPair('other').publicKey.split(' ').slice(0, 2).join(' ');
    expect((await refused(opts({ knownHosts: file('known_traced', `[127.0.0.1]:${server.port} ${other}\n`), trace: (l) => refusedLines.push(l) }))).code).toBe('host-key');
    expect(refusedLines).toContain('ssh: host key ssh-ed25519 changed');
  });

  it('turns Nagle off on its TCP socket for the handshake (small packets in a row are not held for an ACK), on again for the session', async () => {
    const { Socket } = await import('node:net');
    const noDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    const written = vi.spyOn(Socket.prototype, 'write');
    try {
      const link = await sshTransport(opts()).connect();
      expect((await roundTrip(link, Buffer.from('n'))).toString()).toBe('n');
      const on = noDelay.mock.calls.findIndex((c) => c[0] === true);
      expect(on).toBeGreaterThanOrEqual(0);
      // on the client's socket, before its first write there (its version line)
      const sock = noDelay.mock.contexts[on];
      const first = written.mock.contexts.findIndex((c) => c === sock);
      expect(first).toBeGreaterThanOrEqual(0);
      expect(noDelay.mock.invocationCallOrder[on]!).toBeLessThan(written.mock.invocationCallOrder[first]!);
      // and on again for the session once the exec channel is open
      const calls = noDelay.mock.calls.filter((_c, i) => noDelay.mock.contexts[i] === sock).map((c) => c[0]);
      expect(calls).toEqual([true, false]);
    } finally {
      noDelay.mockRestore();
      written.mockRestore();
    }
  });

  it('turns Nagle off again when the link closes, so the EOF after the last frame is not held for an ACK', async () => {
    const { Socket } = await import('node:net');
    const noDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    try {
      const link = await sshTransport(opts()).connect();
      const chunks: Buffer[] = [];
      const reading = (async () => {
        for await (const c of link.input) chunks.push(c as Buffer);
      })();
      link.output.write('bye');
      const sock = noDelay.mock.contexts[noDelay.mock.calls.findIndex((c) => c[0] === true)];
      const on = (): boolean[] => noDelay.mock.calls.filter((_c, i) => noDelay.mock.contexts[i] === sock).map((c) => c[0] as boolean);
      expect(on()).toEqual([true, false]);
      const end = await link.close();
      await reading;
      expect(Buffer.concat(chunks).toString()).toBe('bye');
      expect(end.ok).toBe(true);
      expect(on()).toEqual([true, false, true]);
    } finally {
      noDelay.mockRestore();
    }
  });

  it('reports the remote exit status and stderr', async () => {
    exitWith = 75;
    try {
      const link = await sshTransport(opts()).connect();
      await roundTrip(link, Buffer.from('x'));
      const end = await link.done;
      expect(end.ok).toBe(false);
      expect(end.exitCode).toBe(75);
      expect(end.error?.code).toBe('peer-refused');
      expect(end.error?.message).toContain('status 75');
    } finally {
      exitWith = 0;
    }
  });

  it('accepts a hashed known_hosts entry', async () => {
    const salt = randomBytes(20);
    const name = `[127.0.0.1]:${server.port}`;
    const hash = createHmac('sha1', salt).update(name).digest('base64');
    const known = file('known_hashed', `|1|${salt.toString('base64')}|${hash} ${server.hostPublicKey}\n`);
    const link = await sshTransport(opts({ knownHosts: known })).connect();
    expect((await roundTrip(link, Buffer.from('h'))).toString()).toBe('h');
  });

  it('accepts an entry made by ssh-keygen -H (OpenSSH hashing)', async () => {
    if (!need('ssh-keygen', ['/usr/bin/ssh-keygen'], 'apt-get install openssh-client')) return;
    const known = file('known_keygen', `${server.knownHostsLine}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', known], { stdio: 'ignore' });
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(known, 'utf8')).toMatch(/^\|1\|/);
    const link = await sshTransport(opts({ knownHosts: known })).connect();
    expect((await roundTrip(link, Buffer.from('k'))).toString()).toBe('k');
  });

  it('accepts a wildcard port-form entry among others', async () => {
    const other = generateKeyPair('other').publicKey.split(' ').slice(0, 2).join(' ');
    const known = file('known_wild', `# comment\nexample.org ${other}\n[127.0.0.*]:${server.port},!10.0.0.1 ${server.hostPublicKey}\n`);
    const link = await sshTransport(opts({ knownHosts: known })).connect();
    expect((await roundTrip(link, Buffer.from('w'))).toString()).toBe('w');
  });

  it('refuses an unknown host and says how to add it', async () => {
    // the plain-host form is for port 22 only: it does not vouch for another port
    const err = await refused(opts({ knownHosts: file('known_plain', `127.0.0.1 ${server.hostPublicKey}\n`) }));
    expect(err.code).toBe('host-key');
    expect(err.message).toContain('not known');
    expect(err.message).toContain(`ssh-keyscan -p ${server.port}`);
    expect(err.message).toMatch(/SHA256:[A-Za-z0-9+/]{43}/);
  });

  it('refuses when the known_hosts file does not exist', async () => {
    const err = await refused(opts({ knownHosts: join(dir, 'missing') }));
    expect(err.code).toBe('host-key');
    expect(err.message).toContain('does not exist');
  });

  it('refuses a changed host key and names the old line', async () => {
    const other = generateKeyPair('other').publicKey.split(' ').slice(0, 2).join(' ');
    const err = await refused(opts({ knownHosts: file('known_changed', `\n[127.0.0.1]:${server.port} ${other}\n`) }));
    expect(err.code).toBe('host-key');
    expect(err.message).toContain('HOST KEY CHANGED');
    expect(err.message).toContain('line 2');
    expect(err.message).toContain('ssh-keygen -R');
    expect(err.exitCode).toBe(78);
    expect(err.temporary).toBe(false);
  });

  it('refuses a revoked host key even when it is also listed as good', async () => {
    const err = await refused(opts({ knownHosts: file('known_revoked', `${server.knownHostsLine}\n@revoked * ${server.hostPublicKey}\n`) }));
    expect(err.code).toBe('host-key');
    expect(err.message).toContain('@revoked');
  });

  it('refuses a key the server does not know: auth', async () => {
    const err = await refused(opts({ privateKey: stranger.privateKey }));
    expect(err.code).toBe('auth');
    expect(err.message).toContain('authorized_keys');
    expect(err.message).toContain('command="mailbag serve --peer SITE",restrict');
  });

  it("a refused key's message names this site as the far side's --peer when it is known", async () => {
    const err = await refused(opts({ privateKey: stranger.privateKey, site: 'home' }));
    expect(err.code).toBe('auth');
    expect(err.message).toContain('command="mailbag serve --peer home",restrict');
  });

  it('offers its key at once: no probe with method "none" first (a round trip to sshd per session)', async () => {
    const { Server } = await import('ssh2');
    const hostKey = generateKeyPair('probe-host').privateKey;
    const parsed = utils.parseKey(hostKey) as { type: string; getPublicSSH(): Buffer };
    const methods: string[] = [];
    const probe = new Server({ hostKeys: [hostKey] }, (conn) => {
      conn.on('error', () => {});
      conn.on('authentication', (ctx) => {
        methods.push(ctx.method);
        ctx.reject(['publickey']);
      });
    });
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    try {
      const port = (probe.address() as { port: number }).port;
      const known = file('known_hosts_probe', `[127.0.0.1]:${port} ${parsed.type} ${parsed.getPublicSSH().toString('base64')}\n`);
      const err = await refused(opts({ port, knownHosts: known }));
      expect(err.code).toBe('auth');
      expect(methods[0]).toBe('publickey');
      expect(methods).not.toContain('none');
    } finally {
      probe.close();
    }
  });

  it('refuses a passphrase-protected key with a clear message', async () => {
    const locked = utils.generateKeyPairSync('ed25519', { passphrase: 'secret', cipher: 'aes256-ctr', rounds: 2 });
    const err = await refused(opts({ privateKey: undefined, identity: file('id_locked', locked.private) }));
    expect(err.code).toBe('auth');
    expect(err.message).toContain('passphrase');
  });

  it('refuses an identity that is the public key (the .pub file) as auth, not as an unreachable peer', async () => {
    const err = await refused(opts({ privateKey: undefined, identity: file('id_home.pub', `${client.publicKey}\n`) }));
    expect(err.code).toBe('auth');
    expect(err.message).toContain('is a public key');
    expect(err.message).toContain('id_home.pub');
  });

  it('needs a key or an agent', async () => {
    expect((await refused(opts({ privateKey: undefined }))).code).toBe('auth');
    const e = await refused(opts({ privateKey: undefined, agent: true, env: {} }));
    expect(e.message).toContain('SSH_AUTH_SOCK');
  });

  it('classifies a refused connection as unreachable (temporary)', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const err = await refused(opts({ port }));
    expect(err.code).toBe('unreachable');
    expect(err.temporary).toBe(true);
  });

  it('classifies a silent server as a timeout', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const err = await refused(opts({ port: (silent.address() as { port: number }).port, connectTimeoutMs: 400 }));
      expect(err.code).toBe('timeout');
    } finally {
      silent.close();
    }
  });

  it('uses ssh-agent when agent = true', async () => {
    if (!need('ssh-agent', ['/usr/bin/ssh-agent', '/usr/bin/ssh-add'], 'apt-get install openssh-client')) return;
    const sock = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      execFileSync('ssh-add', [file('id_agent', client.privateKey)], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      const link = await sshTransport(opts({ privateKey: undefined, agent: true, env: { SSH_AUTH_SOCK: sock } })).connect();
      expect((await roundTrip(link, Buffer.from('agent'))).toString()).toBe('agent');
      expect(execs.at(-1)?.peer).toBe('home');
    } finally {
      agent.kill();
    }
  });

  it('abort() tears the link down and done reports it', async () => {
    const link = await sshTransport(opts()).connect();
    link.abort(new Error('protocol violation'));
    const end = await link.done;
    expect(end.ok).toBe(false);
    expect(end.error?.message).toContain('protocol violation');
  });

  it('connect() honours an aborted signal', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(sshTransport(opts()).connect({ signal: ac.signal })).rejects.toMatchObject({ code: 'link' });
  });
});

describe('ssh transport: a black-holed link', () => {
  it('is noticed by keepalives and reported as a timeout', async () => {
    const { startCutProxy } = await import('../../helpers/cut-proxy.js');
    const proxy = await startCutProxy({ target: { host: '127.0.0.1', port: server.port }, cutAfter: undefined, onCut: 'hang' });
    try {
      const link = await sshTransport(
        opts({ port: proxy.port, keepaliveMs: 200, keepaliveCountMax: 2, knownHosts: file('known_proxy', `[127.0.0.1]:${proxy.port} ${server.hostPublicKey}\n`) }),
      ).connect();
      // from now on nothing gets through, and nothing closes
      proxy.hangAll();
      link.input.resume();
      const end = await link.done;
      expect(end.ok).toBe(false);
      expect(end.error?.code).toBe('timeout');
    } finally {
      await proxy.close();
    }
  });
});

describe('embedded server: only exec, as `restrict` would', () => {
  it('refuses a shell, a pty and port forwarding', async () => {
    const { Client } = await import('ssh2');
    const c = new Client();
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve());
      c.once('error', reject);
      c.connect({ host: '127.0.0.1', port: server.port, username: 'x', privateKey: client.privateKey, hostVerifier: () => true });
    });
    try {
      const shell = await new Promise<Error | undefined>((r) => c.shell((e) => r(e)));
      expect(shell).toBeInstanceOf(Error);
      const fwd = await new Promise<Error | undefined>((r) => c.forwardOut('127.0.0.1', 1, '127.0.0.1', server.port, (e) => r(e)));
      expect(fwd).toBeInstanceOf(Error);
    } finally {
      c.end();
    }
  });
});

describe('transportForPeer', () => {
  it('builds ssh and command transports from a peer configuration, and refuses what cannot dial', async () => {
    const { transportForPeer } = await import('../../../lib/transport/index.js');
    const base = {
      name: 'hub', transport: 'ssh' as const, host: '127.0.0.1', port: server.port, user: 'mailbag', identity: file('id_cfg', client.privateKey), agent: false,
      knownHosts: file('known_cfg', `${server.knownHostsLine}\n`), remoteCommand: 'mailbag serve --peer home', command: undefined,
      connectTimeoutMs: 5000, keepaliveMs: 1000, pollMs: 60_000, codec: 'br' as const, accept: ['rmail'], domains: [], addresses: [], actions: {},
    };
    const link = await (await transportForPeer(base)).connect();
    expect((await roundTrip(link, Buffer.from('cfg'))).toString()).toBe('cfg');
    expect((await transportForPeer({ ...base, transport: 'command', command: ['ssh', '-C', 'hub'] })).describe()).toBe('ssh -C hub');
    await expect(transportForPeer({ ...base, host: undefined })).rejects.toThrow(/host is not set/);
    await expect(transportForPeer({ ...base, transport: 'command' })).rejects.toThrow(/command is not set/);
  });

  describe('openEarly: the TCP connection opened before ssh2 is loaded', () => {
    /** a TCP relay to the embedded server that counts the connections it gets and notes when each ends */
    async function relay(): Promise<{ port: number; accepted: number; ended: number; close: () => Promise<void> }> {
      const { connect } = await import('node:net');
      const r = { port: 0, accepted: 0, ended: 0, close: async () => {} };
      const srv = createServer((c) => {
        r.accepted++;
        const up = connect(server.port, '127.0.0.1');
        c.pipe(up).pipe(c);
        c.on('error', () => {});
        up.on('error', () => c.destroy());
        c.on('close', () => {
          r.ended++;
          up.destroy();
        });
      });
      await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
      r.port = (srv.address() as { port: number }).port;
      r.close = () => new Promise((res) => srv.close(() => res()));
      return r;
    }
    const until = async (ok: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((res) => setTimeout(res, 10));
    };
    const peerAt = (port: number) => ({
      name: 'hub', transport: 'ssh' as const, host: '127.0.0.1', port, user: 'mailbag', identity: file('id_early', client.privateKey), agent: false,
      knownHosts: file(`known_early_${port}`, `[127.0.0.1]:${port} ${server.hostPublicKey}\n`), remoteCommand: 'mailbag serve --peer home', command: undefined,
      connectTimeoutMs: 5000, keepaliveMs: 1000, pollMs: 60_000, codec: 'br' as const, accept: ['rmail'], domains: [], addresses: [], actions: {},
    });

    it('is open before connect(), which takes it over: one connection, a working link', async () => {
      const { transportForPeer } = await import('../../../lib/transport/index.js');
      const r = await relay();
      try {
        const lines: string[] = [];
        const t = await transportForPeer(peerAt(r.port), {}, (l) => lines.push(l), { openEarly: true });
        await until(() => r.accepted === 1);
        expect(r.accepted).toBe(1);
        const link = await t.connect();
        expect((await roundTrip(link, Buffer.from('early'))).toString()).toBe('early');
        expect(r.accepted).toBe(1);
        expect(lines).toContain('ssh: handshake starts on the connection opened early');
        // a second connect() opens its own
        const again = await t.connect();
        expect((await roundTrip(again, Buffer.from('2'))).toString()).toBe('2');
        expect(r.accepted).toBe(2);
      } finally {
        await r.close();
      }
    });

    it('refused: connect() says unreachable; aborted before connect(): the connection is closed', async () => {
      const { transportForPeer } = await import('../../../lib/transport/index.js');
      const { dialEarly } = await import('../../../lib/transport/early.js');
      const probe = createServer();
      await new Promise<void>((res) => probe.listen(0, '127.0.0.1', res));
      const dead = (probe.address() as { port: number }).port;
      await new Promise((res) => probe.close(res));
      const t = await transportForPeer(peerAt(dead), {}, undefined, { openEarly: true });
      await new Promise((res) => setTimeout(res, 50));
      await expect(t.connect()).rejects.toMatchObject({ code: 'unreachable', message: expect.stringContaining('cannot connect') });
      // mailbag sync's early dial, released (the lock was held) before the link was taken
      const r = await relay();
      try {
        const early = dialEarly(() => transportForPeer(peerAt(r.port), {}, undefined, { openEarly: true }), 'peer hub');
        await until(() => r.accepted === 1);
        await early.release();
        await until(() => r.ended === 1);
        expect([r.accepted, r.ended]).toEqual([1, 1]);
      } finally {
        await r.close();
      }
    });
  });
});
