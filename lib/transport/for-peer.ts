// The transport a peer's configuration asks for: ssh (ssh2) to host:port, or a command.
// Only that transport's module is loaded: `transport = "command"` and `mailbag serve`
// never load the SSH client library.

import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { SessionError } from '../errors.js';
import type { PeerConfig } from '../config/types.js';
import type { Transport } from './types.js';

/** A TCP connection opened before ssh2 is loaded, and the error it met before ssh2 took it over. */
export interface EarlySocket {
  readonly socket: Socket;
  readonly error: () => Error | undefined;
}

/**
 * `trace`: one line per step of an SSH connection (MAILBAG_TRACE). `openEarly`: for a
 * transport that will be connected at once (mailbag sync's early dial), open its TCP
 * connection before ssh2 is loaded and the key is read: sshd forks and reads its
 * configuration and host keys before it sends its banner (17-39 ms on loopback), which
 * then overlaps our own preparations. Its first connect() takes that connection over.
 * `site`: this site's name, for the refused key's message (`--peer SITE` on the far side).
 */
export async function transportForPeer(peer: PeerConfig, env: NodeJS.ProcessEnv = process.env, trace?: (line: string) => void, o: { openEarly?: boolean; site?: string } = {}): Promise<Transport> {
  if (peer.transport === 'command') {
    if (!peer.command || peer.command.length === 0) throw new SessionError('config', `peers.${peer.name}.command is not set (transport = "command" needs an argv)`);
    const { commandTransport } = await import('./command.js');
    return commandTransport({ argv: peer.command, env, ...(trace ? { trace } : {}) });
  }
  if (!peer.host) throw new SessionError('config', `peers.${peer.name}.host is not set: this site cannot dial ${peer.name}`);
  let early: EarlySocket | undefined;
  if (o.openEarly) {
    let error: Error | undefined;
    trace?.(`ssh: opening a TCP connection to ${peer.host}:${peer.port} before ssh2 is loaded`);
    // node:net only here (mailbag serve, whose bundle holds this file, never needs it), and
    // through require: the bundles run as scripts, where import() of a built-in is refused
    const { connect } = createRequire(import.meta.url)('node:net') as typeof import('node:net');
    const socket = connect({ host: peer.host, port: peer.port, noDelay: true });
    // kept for connect() to report (as ssh2 reports its own socket's errors)
    socket.on('error', (err) => void (error ??= err));
    if (trace) socket.once('connect', () => trace('ssh: TCP connected'));
    early = { socket, error: () => error };
  }
  let sshTransport: typeof import('./ssh.js').sshTransport;
  try {
    ({ sshTransport } = await import('./ssh.js'));
  } catch (err) {
    early?.socket.destroy();
    throw err;
  }
  trace?.('ssh: ssh2 loaded');
  return sshTransport({
    host: peer.host,
    port: peer.port,
    user: peer.user,
    identity: peer.identity,
    agent: peer.agent,
    knownHosts: peer.knownHosts,
    remoteCommand: peer.remoteCommand,
    connectTimeoutMs: peer.connectTimeoutMs,
    keepaliveMs: peer.keepaliveMs,
    env,
    peer: peer.name,
    ...(o.site ? { site: o.site } : {}),
    ...(trace ? { trace } : {}),
  }, early);
}
