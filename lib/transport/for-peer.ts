// The transport a peer's configuration asks for: ssh (ssh2) to host:port, or a command.
// Only that transport's module is loaded: `transport = "command"` and `mailbag serve`
// never load the SSH client library.

import { SessionError } from '../errors.js';
import type { PeerConfig } from '../config/types.js';
import type { Transport } from './types.js';

/** `trace`: one line per step of an SSH connection (MAILBAG_TRACE) */
export async function transportForPeer(peer: PeerConfig, env: NodeJS.ProcessEnv = process.env, trace?: (line: string) => void): Promise<Transport> {
  if (peer.transport === 'command') {
    if (!peer.command || peer.command.length === 0) throw new SessionError('config', `peers.${peer.name}.command is not set (transport = "command" needs an argv)`);
    const { commandTransport } = await import('./command.js');
    return commandTransport({ argv: peer.command, env });
  }
  if (!peer.host) throw new SessionError('config', `peers.${peer.name}.host is not set: this site cannot dial ${peer.name}`);
  const { sshTransport } = await import('./ssh.js');
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
    ...(trace ? { trace } : {}),
  });
}
