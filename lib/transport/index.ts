// Transports: one Link interface; ssh (ssh2 client), command (any argv over stdio),
// pair (in-process, for tests) and an embedded SSH server for tests and the demo.
export type { Link, LinkEnd, Transport, ConnectOptions } from './types.js';
export { streamLink, BaseLink, StderrTail } from './link.js';
export { createPair, pairTransport, type PairOptions } from './pair.js';
