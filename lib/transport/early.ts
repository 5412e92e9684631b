// A link dialled ahead of its use: `mailbag sync` starts the connection (ssh2's load, TCP,
// the SSH handshake, authentication, the exec channel; or the command transport's child)
// as soon as its configuration is read, while it expires old jobs, opens its spool and
// takes the session lock. The session takes the link through `transport.connect()`; one
// nobody took (the lock was held by another session, an error came first) is aborted by
// `release()`, before it is up or after. Every wait is bounded: connecting by the
// transport's own timeout, `release()` by RELEASE_MS.

import type { ConnectOptions, Link, Transport } from './types.js';

/** how long release() waits for an untaken link to be torn down */
export const RELEASE_MS = 5_000;

export interface EarlyDial {
  /** hands over the link dialled at the start (once: a second connect() is refused) */
  readonly transport: Transport;
  /** abort the link if nobody took it; resolves once it is torn down (bounded) */
  release(): Promise<void>;
}

/** Start `make()`'s transport connecting now; see the file's head. */
export function dialEarly(make: () => Promise<Transport>, describe: string): EarlyDial {
  const ac = new AbortController();
  let made: Transport | undefined;
  let taken = false;
  const linked: Promise<Link> = make().then((t) => {
    made = t;
    return t.connect({ signal: ac.signal });
  });
  linked.catch(() => {});
  const transport: Transport = {
    describe: () => made?.describe() ?? describe,
    connect(options?: ConnectOptions): Promise<Link> {
      if (taken) return Promise.reject(new Error(`${describe}: the early link was taken already`));
      taken = true;
      // an abort asked for by the taker reaches the connection still being made
      options?.signal?.addEventListener('abort', () => ac.abort(options.signal?.reason), { once: true });
      if (options?.signal?.aborted) ac.abort(options.signal.reason);
      return linked;
    },
  };
  return {
    transport,
    async release(): Promise<void> {
      if (taken) return;
      taken = true;
      ac.abort(new Error('not used'));
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, RELEASE_MS);
        timer.unref();
      });
      const down = linked.then(
        async (link) => {
          link.abort(new Error('not used: the session did not start'));
          await link.done;
        },
        () => undefined,
      );
      await Promise.race([down, bound]);
      clearTimeout(timer);
    },
  };
}
