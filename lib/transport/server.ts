// An embedded SSH server (ssh2 Server) for tests and the demo: listens on 127.0.0.1,
// accepts only public keys listed with the peer name each stands for, and hands every
// exec request to a callback as a Link — what an OpenSSH forced command
// (`command="mailbag serve --peer NAME",restrict`) does. No shell, pty, forwarding,
// environment or subsystem is ever granted.

import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
// ssh2 is CommonJS: Node's ESM loader finds no named exports in it (vitest hides that),
// so take them from the default export.
import ssh2 from 'ssh2';
import type { Connection, ParsedKey, ServerChannel } from 'ssh2';
const { Server, utils } = ssh2;
import { SessionError } from '../errors.js';
import { BaseLink } from './link.js';
import type { Link } from './types.js';

export interface AuthorizedKey {
  /** an OpenSSH public key line (`ssh-ed25519 AAAA… comment`) */
  key: string;
  /** the peer this key stands for (as `--peer NAME` in a forced command) */
  peer: string;
}

export interface ExecRequest {
  /** the peer whose key authenticated */
  peer: string;
  /** the user name the client gave */
  user: string;
  /** the command the client asked for (a forced command would ignore it) */
  command: string;
  link: Link;
}

export interface SshServerOptions {
  /** listen address (default 127.0.0.1) */
  host?: string;
  /** default 0: a free port */
  port?: number;
  /** private host keys (OpenSSH or PEM); default: one ed25519 key made now */
  hostKeys?: (string | Buffer)[];
  authorizedKeys: AuthorizedKey[];
  /** runs the far end; resolves to the exit status sent to the client (a throw sends 70) */
  onExec: (request: ExecRequest) => Promise<number> | number;
}

export interface SshServerHandle {
  host: string;
  port: number;
  /** the host public key as an OpenSSH line without comment (`ssh-ed25519 AAAA…`) */
  hostPublicKey: string;
  /** a known_hosts line for this server (`[127.0.0.1]:PORT ssh-ed25519 AAAA…`) */
  knownHostsLine: string;
  /** stop listening and drop every connection */
  close(): Promise<void>;
}

/**
 * A new ed25519 key pair in OpenSSH format, for tests and the demo. ssh2's generator
 * now and then (about 1 in 500) writes a key its own parser calls malformed; such a
 * pair is thrown away and another made.
 */
export function generateKeyPair(comment = 'mailbag'): { privateKey: string; publicKey: string } {
  for (let attempt = 0; attempt < 100; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    const priv = utils.parseKey(pair.private);
    const pub = utils.parseKey(pair.public);
    if (priv instanceof Error || pub instanceof Error) continue;
    const p = Array.isArray(priv) ? (priv[0] as ParsedKey) : priv;
    const q = Array.isArray(pub) ? (pub[0] as ParsedKey) : pub;
    if (p.getPublicSSH().equals(q.getPublicSSH())) return { privateKey: pair.private, publicKey: pair.public };
  }
  throw new SessionError('internal', 'could not generate a usable ed25519 key pair');
}

function parsePublic(line: string): ParsedKey {
  const k = utils.parseKey(line);
  if (k instanceof Error) throw new SessionError('config', `not an OpenSSH public key: ${line.slice(0, 40)}…: ${k.message}`);
  return Array.isArray(k) ? (k[0] as ParsedKey) : k;
}

export async function startSshServer(options: SshServerOptions): Promise<SshServerHandle> {
  const hostKeys = options.hostKeys ?? [generateKeyPair('mailbag-embedded-host').privateKey];
  const firstHost = utils.parseKey(hostKeys[0]!);
  if (firstHost instanceof Error) throw new SessionError('config', `host key: ${firstHost.message}`);
  const hostParsed = Array.isArray(firstHost) ? (firstHost[0] as ParsedKey) : firstHost;
  const hostPublicKey = `${hostParsed.type} ${hostParsed.getPublicSSH().toString('base64')}`;
  const allowed = options.authorizedKeys.map((a) => ({ parsed: parsePublic(a.key), peer: a.peer }));
  const connections = new Set<Connection>();

  const server = new Server({ hostKeys }, (conn) => {
    connections.add(conn);
    let peer: string | undefined;
    let user = '';
    conn.on('error', () => {
      // a client that vanished; nothing to do
    });
    conn.on('close', () => connections.delete(conn));
    conn.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      const match = allowed.find((a) => a.parsed.type === ctx.key.algo && a.parsed.getPublicSSH().equals(ctx.key.data));
      if (!match) return ctx.reject(['publickey']);
      // without a signature the client only asks whether the key would do
      if (ctx.signature && ctx.blob && match.parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject(['publickey']);
      if (!ctx.signature) return ctx.accept();
      peer = match.peer;
      user = ctx.username;
      ctx.accept();
    });
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        const session = acceptSession();
        let used = false;
        session.on('exec', (accept, _reject, info) => {
          if (used || peer === undefined) return _reject?.();
          used = true;
          const channel = accept();
          runExec(channel, { peer, user, command: info.command }, options.onExec);
        });
        // `restrict`: nothing but exec
        session.on('pty', (_a, reject) => reject?.());
        session.on('shell', (_a, reject) => reject?.());
        session.on('subsystem', (_a, reject) => reject?.());
        session.on('env', (_a, reject) => reject?.());
        session.on('x11', (_a, reject) => reject?.());
        session.on('auth-agent', (_a, reject) => reject?.());
      });
      conn.on('tcpip', (_a, reject) => reject());
      conn.on('openssh.streamlocal', (_a, reject) => reject());
      conn.on('request', (_a, reject) => reject?.());
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address;
  return {
    host,
    port: address.port,
    hostPublicKey,
    knownHostsLine: `[${host}]:${address.port} ${hostPublicKey}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.end();
        server.close(() => resolve());
        // connections that do not end politely are dropped
        setTimeout(() => {
          for (const c of connections) (c as unknown as { _sock?: { destroy(): void } })._sock?.destroy();
        }, 1000).unref();
      }),
  };
}

function runExec(channel: ServerChannel, req: { peer: string; user: string; command: string }, onExec: SshServerOptions['onExec']): void {
  // The callback writes into `output`, not straight into the channel: ssh2 can send the
  // exit status only while the channel is open, so the channel's EOF and CLOSE wait
  // until the callback has returned its status (OpenSSH sends status, then EOF/CLOSE, too).
  const output = new PassThrough();
  output.pipe(channel, { end: false });
  const link: BaseLink = new BaseLink({
    input: channel,
    output,
    describe: `ssh-server exec for ${req.peer}`,
    teardown: (error) => {
      link.settle({ ok: false, error: new SessionError('link', `embedded server aborted the exec${error ? `: ${error.message}` : ''}`) });
      channel.destroy();
    },
  });
  channel.on('close', () => link.settle({ ok: true }));
  channel.on('error', () => {});
  Promise.resolve()
    .then(() => onExec({ ...req, link }))
    .then(
      (code) => code,
      (err: unknown) => {
        try {
          channel.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        } catch {
          // the channel is gone
        }
        return 70;
      },
    )
    .then(async (code) => {
      if (!output.writableEnded) output.end();
      if (!output.readableEnded && !output.destroyed) await new Promise((r) => { output.once('end', r); output.once('close', r); });
      if (channel.writableLength > 0 && !channel.destroyed) await new Promise((r) => { channel.once('drain', r); channel.once('close', r); });
      if (channel.destroyed) return;
      channel.exit(typeof code === 'number' ? code : 0);
      // finishing a server channel sends EOF and CLOSE after the data still queued
      channel.end();
    });
}
