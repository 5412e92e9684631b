// Transports: one Link interface; ssh (ssh2 client), command (any argv over stdio),
// pair (in-process, for tests) and an embedded SSH server for tests and the demo.
export type { Link, LinkEnd, Transport, ConnectOptions } from './types.js';
export { streamLink, BaseLink, StderrTail, CLOSE_GRACE_MS } from './link.js';
export { createPair, pairTransport, type PairOptions } from './pair.js';
export { sshTransport, classifySshError, type SshOptions } from './ssh.js';
export { commandTransport, classifyCommandExit, type CommandOptions } from './command.js';
export { startSshServer, generateKeyPair, type SshServerOptions, type SshServerHandle, type AuthorizedKey, type ExecRequest } from './server.js';
export { checkHostKey, fingerprintOf, knownHostsName, patternsMatch, type HostKeyVerdict } from './known-hosts.js';
export { transportForPeer } from './for-peer.js';
