// The SSH transport: an ssh2 client that checks the server's host key against an
// OpenSSH known_hosts file, authenticates with an OpenSSH private key and/or ssh-agent,
// runs the peer's remote command (normally forced by authorized_keys anyway) and hands
// its exec channel over as a Link. Failures are classified from ssh2's err.level:
// socket, DNS and timeout are temporary; authentication and host keys are errors the
// admin must fix, and the message says how.

import { open, readFile } from 'node:fs/promises';
// ssh2 is CommonJS: Node's ESM loader finds no named exports in it (vitest hides that),
// so take them from the default export.
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
const { Client, utils } = ssh2;
import { SessionError } from '../errors.js';
import { checkHostKey, fingerprintOf, keyTypeOf, knownHostKeyAlgorithms, knownHostsName, type HostKeyVerdict } from './known-hosts.js';
import { BaseLink, CLOSE_GRACE_MS } from './link.js';
import type { EarlySocket } from './for-peer.js';
import type { ConnectOptions, Link, Transport } from './types.js';

export interface SshOptions {
  host: string;
  port: number;
  user: string;
  /** OpenSSH private key file (ed25519, ecdsa, rsa; no passphrase, unless `agent` is set: then the agent signs for it) */
  identity?: string | undefined;
  /** key material instead of a file (tests, the demo) */
  privateKey?: Buffer | string | undefined;
  /** true: use $SSH_AUTH_SOCK; a string: that agent socket */
  agent?: boolean | string | undefined;
  /** OpenSSH known_hosts file the server's host key must be in */
  knownHosts: string;
  /** command run on the far side (an authorized_keys forced command overrides it there) */
  remoteCommand: string;
  /** TCP connect + SSH handshake + authentication must finish within this (default 30 s) */
  connectTimeoutMs?: number;
  /** SSH keepalive interval (default 15 s); 0 = none */
  keepaliveMs?: number;
  /** keepalives unanswered before the link counts as dead (default 3) */
  keepaliveCountMax?: number;
  /** the environment SSH_AUTH_SOCK is taken from (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** for messages: the peer's name and the config file, so errors say what to edit */
  peer?: string | undefined;
  /** for messages: this site's name, the `--peer` of the far side's forced command */
  site?: string | undefined;
  /** one line per step of the connection (MAILBAG_TRACE): TCP, keys exchanged, host key, authenticated, exec */
  trace?: ((line: string) => void) | undefined;
}

/** host key algorithms ssh2 speaks, in its own order of preference */
const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SessionError('host-key', `cannot read known_hosts file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function hostKeyMessage(v: HostKeyVerdict, o: SshOptions, offered: Buffer, fileMissing: boolean): string {
  const name = knownHostsName(o.host, o.port);
  const type = keyTypeOf(offered);
  const fp = fingerprintOf(offered);
  const scan = `ssh-keyscan ${o.port === 22 ? '' : `-p ${o.port} `}-t ${type.replace(/^ssh-/, '').replace(/^ecdsa-sha2-.*/, 'ecdsa')} ${o.host} >> ${o.knownHosts}`;
  switch (v.verdict) {
    case 'unknown':
      return (
        `host key of ${name} is not known: ${o.knownHosts} ${fileMissing ? 'does not exist' : `has no key for ${name}`}. ` +
        `The server offered ${type} ${fp}. If that is the right key (compare it with \`ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-/, '').replace(/-sha2-.*/, '')}_key.pub\` on the server), add it: ${scan}`
      );
    case 'changed':
      return (
        `HOST KEY CHANGED for ${name}: the server offered ${type} ${fp}, but ${o.knownHosts} has ` +
        v.known.map((k) => `${k.type} ${k.fingerprint} (line ${k.line})`).join(', ') +
        `. Someone may be intercepting the connection, or the server's key was replaced. Refusing to connect. ` +
        `If you have verified the new key out of band, remove the old one with \`ssh-keygen -R '${name}' -f ${o.knownHosts}\` and add the new: ${scan}`
      );
    case 'revoked':
      return `host key of ${name} (${type} ${fp}) is marked @revoked in ${o.knownHosts} line ${v.line}: refusing to connect. The server must get a new host key.`;
    case 'ok':
      return 'ok';
  }
}

/** Classify an ssh2 error by its level into a SessionError with a message that says what to do. */
export function classifySshError(err: Error & { level?: string; code?: string }, o: SshOptions, ready: boolean, authHow: string): SessionError {
  const where = `${o.user}@${knownHostsName(o.host, o.port)}`;
  switch (err.level) {
    case 'client-authentication':
      return new SessionError(
        'auth',
        `${where} refused authentication (${authHow}). Check that the public key is in ~${o.user}/.ssh/authorized_keys on ${o.host}, ` +
          `as command="mailbag serve --peer ${o.site ?? 'SITE'}",restrict ssh-…, and that the user and identity in the peer's configuration are right`,
        { cause: err },
      );
    case 'client-timeout':
      return new SessionError('timeout', ready ? `${where}: the link went silent (keepalive timeout)` : `${where}: no SSH handshake within ${o.connectTimeoutMs ?? 30_000} ms`, { cause: err });
    case 'client-dns':
      return new SessionError('unreachable', `${where}: cannot resolve ${o.host}: ${err.message}`, { cause: err });
    case 'client-socket':
      return ready
        ? new SessionError('link', `${where}: connection lost: ${err.message}`, { cause: err })
        : new SessionError('unreachable', `${where}: cannot connect: ${err.message}`, { cause: err });
    case 'agent':
      return new SessionError('auth', `${where}: ssh-agent failed: ${err.message}`, { cause: err });
    default:
      return new SessionError(ready ? 'link' : 'protocol', `${where}: SSH ${err.level ? `${err.level} ` : ''}error: ${err.message}`, { cause: err });
  }
}

/** why loadKey left an identity out for the agent, when not its passphrase (for the messages) */
const leftOut = new WeakMap<SshOptions, string>();

async function loadKey(o: SshOptions): Promise<Buffer | string | undefined> {
  let material: Buffer | string | undefined = o.privateKey;
  if (material === undefined && o.identity !== undefined) {
    let st: { mode: number; uid: number };
    try {
      const fh = await open(o.identity, 'r');
      try {
        st = await fh.stat();
        material = await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new SessionError('auth', `cannot read the identity file ${o.identity}: ${(err as Error).message}`, { cause: err });
    }
    // what ssh(1) does (sshkey_perm_ok): a key of ours that others may read or write is not
    // used. Taken anyway, it would keep working here while ssh(1), a transport = "command"
    // peer, or an audit refuses it, and its owner never learn that it may be copied
    if (st.uid === process.getuid?.() && (st.mode & 0o077) !== 0) {
      const perms = `0${(st.mode & 0o777).toString(8).padStart(3, '0')}`;
      // with an agent, ssh(1) ignores the file and the agent signs (it may hold that key)
      if (o.agent !== undefined && o.agent !== false) {
        o.trace?.(`identity ${o.identity} left out: open to others (permissions ${perms}), as ssh(1) does; the agent signs`);
        leftOut.set(o, `open to others (${perms}), left out as ssh(1) does,`);
        return undefined;
      }
      throw new SessionError('auth', `the identity file ${o.identity} is open to others (permissions ${perms}): ssh refuses such a private key, and so does mailbag; chmod 600 ${o.identity}`);
    }
  }
  if (material === undefined) return undefined;
  const parsed = utils.parseKey(material);
  const what = o.identity ?? 'the private key given';
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    // kept encrypted at rest and loaded into the agent (docs/security.md): the agent signs
    if (encrypted && o.agent !== undefined && o.agent !== false) return undefined;
    throw new SessionError(
      'auth',
      encrypted
        ? `${what} is protected by a passphrase: use a key without one for mailbag (ssh-keygen -t ed25519 -N '' -f FILE), or load it into ssh-agent and set agent = true`
        : `${what} is not a private key ssh2 can read (${parsed.message}); OpenSSH ed25519, ecdsa and rsa keys work`,
      { cause: parsed },
    );
  }
  // a .pub file parses as a key too; ssh2 then refused it at connect() in words that came
  // out as 'cannot reach PEER' (unreachable, retried by every dispatch)
  const keys = Array.isArray(parsed) ? parsed : [parsed];
  if (!keys.some((k) => k.isPrivateKey())) {
    throw new SessionError('auth', `${what} is a public key: identity must name the private key (the file without .pub)`);
  }
  return material;
}

/**
 * `first`: a TCP connection to o.host:o.port opened already (for-peer.ts, before ssh2 was
 * loaded), which the first connect() takes over; later ones open their own
 */
export function sshTransport(o: SshOptions, first?: EarlySocket): Transport {
  const describe = `ssh ${o.user}@${knownHostsName(o.host, o.port)} ${JSON.stringify(o.remoteCommand)}`;
  let early = first;
  return {
    describe: () => describe,
    connect: (options?: ConnectOptions) => {
      const socket = early;
      early = undefined;
      return connectSsh(o, describe, options, socket);
    },
  };
}

async function connectSsh(o: SshOptions, describe: string, options?: ConnectOptions, early?: EarlySocket): Promise<Link> {
  try {
    return await connectWith(o, describe, options, early);
  } catch (err) {
    // a connection opened early that ssh2 did not take over (an error or an abort came
    // first) is closed here; one it took is closed already
    early?.socket.destroy();
    throw err;
  }
}

async function connectWith(o: SshOptions, describe: string, options?: ConnectOptions, early?: EarlySocket): Promise<Link> {
  const env = o.env ?? process.env;
  const privateKey = await loadKey(o);
  let agent: string | undefined;
  if (typeof o.agent === 'string') agent = o.agent;
  else if (o.agent === true) {
    agent = env.SSH_AUTH_SOCK;
    if (!agent) throw new SessionError('auth', `agent = true${o.peer ? ` for peer ${o.peer}` : ''} but SSH_AUTH_SOCK is not set: start ssh-agent and add the key, or set identity`);
  }
  if (privateKey === undefined && agent === undefined) {
    throw new SessionError('auth', `no way to authenticate to ${o.host}${o.peer ? ` (peer ${o.peer})` : ''}: set identity to a private key file, or agent = true`);
  }
  // an identity left out (its passphrase: the agent signs for it) is named with the agent
  const keyLeft = privateKey === undefined && (o.identity !== undefined || o.privateKey !== undefined) ? ` for the ${leftOut.get(o) ?? 'passphrase-protected'} ${o.identity ?? 'key given'}` : '';
  const authHow = [privateKey !== undefined ? `key ${o.identity ?? '(given)'}` : '', agent ? `ssh-agent ${agent}${keyLeft}` : ''].filter(Boolean).join(', ');
  const knownText = await readOptional(o.knownHosts);
  const known = knownText ?? '';
  const preferred = knownHostKeyAlgorithms(known, o.host, o.port).filter((a) => HOST_KEY_ALGORITHMS.includes(a));
  const serverHostKey = [...preferred, ...HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
  const connectTimeout = o.connectTimeoutMs ?? 30_000;

  let hostKeyError: SessionError | undefined;
  const trace = o.trace;
  trace?.(`ssh: connecting to ${knownHostsName(o.host, o.port)}`);
  const client = new Client();
  const config: ConnectConfig = {
    host: o.host,
    port: o.port,
    username: o.user,
    readyTimeout: connectTimeout,
    keepaliveInterval: o.keepaliveMs ?? 15_000,
    keepaliveCountMax: o.keepaliveCountMax ?? 3,
    algorithms: { serverHostKey: serverHostKey as never },
    hostVerifier: (key: Buffer) => {
      const v = checkHostKey(known, o.host, o.port, key);
      trace?.(`ssh: host key ${keyTypeOf(key)} ${v.verdict}`);
      if (v.verdict === 'ok') return true;
      hostKeyError = new SessionError('host-key', hostKeyMessage(v, o, key, knownText === undefined));
      return false;
    },
  };
  if (privateKey !== undefined) config.privateKey = privateKey;
  if (agent !== undefined) config.agent = agent;
  // the key first, then the agent; not ssh2's default probe with method "none" first (one
  // round trip to sshd's monitor, 9 ms on loopback, before every session)
  config.authHandler = [...(privateKey !== undefined ? ['publickey'] : []), ...(agent !== undefined ? ['agent'] : [])] as never;

  const channel = await new Promise<ClientChannel>((resolve, reject) => {
    let ready = false;
    let finished = false;
    const fail = (err: SessionError): void => {
      if (finished) return;
      finished = true;
      cleanup();
      // ssh2 may still report the teardown itself; it is no news any more
      client.on('error', () => {});
      client.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(new SessionError('link', `${describe}: connect aborted`));
    const onError = (err: Error & { level?: string }): void => fail(hostKeyError ?? classifySshError(err, o, ready, authHow));
    const onClose = (): void => fail(hostKeyError ?? new SessionError(ready ? 'link' : 'unreachable', `${describe}: connection closed before the remote command started`));
    // exec must answer within the connect timeout too
    const execTimer = setTimeout(() => fail(new SessionError('timeout', `${describe}: no answer within ${connectTimeout} ms`)), connectTimeout + 1000);
    execTimer.unref();
    const cleanup = (): void => {
      clearTimeout(execTimer);
      options?.signal?.removeEventListener('abort', onAbort);
      client.off('error', onError);
      client.off('close', onClose);
    };
    if (options?.signal?.aborted) return onAbort();
    options?.signal?.addEventListener('abort', onAbort);
    client.on('error', onError);
    client.on('close', onClose);
    client.once('connect', () => {
      // before ssh2 writes anything: without TCP_NODELAY, Nagle holds each small packet
      // written right after another (NEWKEYS then SERVICE_REQUEST, the signed userauth
      // request, the exec request) until the first is acknowledged, and the far side delays
      // that ACK by up to 40 ms: 35-65 ms more from connect to the exec channel on loopback.
      // For the handshake (see the exec channel below) and the session's end (close())
      client.setNoDelay(true);
      trace?.(early ? 'ssh: handshake starts on the connection opened early' : 'ssh: TCP connected');
    });
    if (trace) client.once('handshake', (n) => trace(`ssh: keys exchanged (${n.kex}, ${n.serverHostKey}, ${n.cs.cipher}${n.cs.mac ? ` ${n.cs.mac}` : ''})`));
    client.once('ready', () => {
      ready = true;
      trace?.('ssh: authenticated');
      client.exec(o.remoteCommand, (err, ch) => {
        if (err) return fail(new SessionError('peer-refused', `${describe}: the server refused to run the command: ${err.message}`, { cause: err }));
        if (finished) {
          ch.close();
          return;
        }
        finished = true;
        cleanup();
        // Nagle again for the session: bag data goes out in 32 KiB packets, which it lets
        // the kernel join into full segments (4 and 26 MB written to a test sshd's `cat`:
        // 4-30 % less wall time than with TCP_NODELAY kept, 7 runs of 8 pairs, load 9-14)
        client.setNoDelay(false);
        trace?.('ssh: exec channel open');
        resolve(ch);
      });
    });
    if (early) {
      // refused, reset or closed before ssh2 took it: reported as ssh2 reports its own
      const err = early.error() ?? (early.socket.destroyed ? new Error('the connection closed') : undefined);
      if (err) return onError(Object.assign(err, { level: 'client-socket' }));
      config.sock = early.socket;
    }
    client.connect(config);
  });

  let exitCode: number | null = null;
  let signal: string | null = null;
  let linkError: SessionError | undefined;
  let detached = false;
  const link: BaseLink = new BaseLink({
    input: channel,
    output: channel,
    describe,
    // the session's last packets (BYE, then the channel's EOF and CLOSE) are small: with
    // Nagle, the EOF waited for the far side's (delayed) ACK of the BYE, ~35 ms, and serve
    // for the EOF before it could exit
    beforeEnd: () => client.setNoDelay(true),
    // after both BYEs, a far command still at work (serve's moves and run step) goes on
    // without us: the TCP connection is half-closed behind our channel EOF, with no SSH
    // DISCONNECT (on which sshd exits at once, dropping what it had not yet written to the
    // command's stdin). sshd writes what it read to the command, reads our FIN and closes;
    // the command, which has no pty, is not signalled and finishes. Bounded: a far end that
    // never closes is dropped after CLOSE_GRACE_MS
    detach: () => {
      detached = true;
      const sock = (client as unknown as { _sock?: { end(): void; writable?: boolean } })._sock;
      if (sock?.writable) sock.end();
      else client.destroy();
      setTimeout(() => client.destroy(), CLOSE_GRACE_MS).unref();
    },
    teardown: (error) => {
      linkError ??= error
        ? error instanceof SessionError
          ? error
          : new SessionError('link', `${describe}: aborted: ${error.message}`, { cause: error })
        : new SessionError('timeout', `${describe}: torn down before the far side closed`);
      client.destroy();
    },
  });
  channel.stderr.pipe(link.stderrTail);
  channel.on('exit', (code: number | null, sig?: string) => {
    exitCode = code;
    signal = sig ?? null;
  });
  channel.on('close', () => client.end());
  client.on('error', (err: Error & { level?: string }) => {
    // let go (detach): a write of ssh2's after our FIN (a keepalive) fails, and a destroy
    // here could drop the bytes before the FIN not yet handed to the kernel; the far side's
    // close, or the bound in detach, ends the connection
    if (detached) return;
    linkError ??= classifySshError(err, o, true, authHow);
    client.destroy();
  });
  client.on('close', () => {
    const stderr = link.stderrTail.text();
    let error = linkError;
    if (!error && exitCode === null && signal === null) error = new SessionError('link', `${describe}: connection closed without an exit status${stderr ? `: ${stderr}` : ''}`);
    if (!error && signal !== null) error = new SessionError('link', `${describe}: remote command killed by ${signal}${stderr ? `: ${stderr}` : ''}`);
    if (!error && exitCode !== 0) error = new SessionError('peer-refused', `${describe}: remote command exited with status ${exitCode}${stderr ? `: ${stderr}` : ''}`);
    link.settle({ exitCode, signal, stderr, error });
  });
  return link;
}
