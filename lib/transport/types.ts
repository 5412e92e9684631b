// One transport interface: a Link is a pair of byte streams to the far side (an SSH
// exec channel, a child's stdio, an in-process pair). The session protocol runs over
// any Link and never learns which transport made it.

import type { Readable, Writable } from 'node:stream';
import type { SessionError } from '../errors.js';

/** How a link ended. `done` resolves with this and never rejects. */
export interface LinkEnd {
  /** true when the link closed cleanly (and the far command, if any, exited 0) */
  ok: boolean;
  /** exit status of the far command (ssh exec) or the child (command transport); null when unknown */
  exitCode: number | null;
  /** signal that ended the far command or child, when one did */
  signal: string | null;
  /** the last few KiB the far side wrote to stderr (trimmed) */
  stderr: string;
  /** what went wrong when ok is false: code 'link', 'unreachable', 'timeout', 'auth', 'host-key', 'peer-refused' … */
  error: SessionError | undefined;
  /**
   * true when close({ detachAfterMs }) let the far side go on without us: our output ended
   * and handed to the transport, the far command not yet exited (its exit status unknown)
   */
  detached?: boolean;
}

export interface CloseOptions {
  /**
   * after this long without the far side's end, let it finish on its own (transports that
   * can: ssh) instead of waiting up to the close grace and tearing the link down. For a
   * session that ended (both BYEs): what the far side does next (its moves, its run step)
   * is its own, and a far `mailbag serve` goes on when the connection is gone
   */
  detachAfterMs?: number;
}

export interface Link {
  /** bytes from the far side; ends (EOF) when the far side ends its output */
  readonly input: Readable;
  /** bytes to the far side; `output.end()` half-closes (the far side sees EOF) */
  readonly output: Writable;
  /** resolves once the link is torn down, with how it ended; never rejects */
  readonly done: Promise<LinkEnd>;
  /** end our output, wait (bounded) for the far side to finish, tear down (or detach); resolves with `done` */
  close(options?: CloseOptions): Promise<LinkEnd>;
  /** tear down now (a dead link, a protocol error); `done` then reports `error` or a 'link' error */
  abort(error?: Error): void;
  /** one line for logs: `ssh mailbag@hub.example.org:22 "mailbag serve --peer home"` */
  describe(): string;
}

export interface ConnectOptions {
  /** aborting before the link is up rejects connect() with SessionError 'link' */
  signal?: AbortSignal;
}

export interface Transport {
  /** open a link; rejects with SessionError ('unreachable', 'timeout', 'auth', 'host-key', 'config' …) */
  connect(options?: ConnectOptions): Promise<Link>;
  describe(): string;
}
