// A TCP proxy on 127.0.0.1 that drops a connection (RST) after a given number of bytes,
// the way a flaky DSL line or a NAT timeout does: for resume tests of the session over
// real SSH. Exactly `cutAfter` bytes of the counted direction get through.

import { createServer, connect, type Socket } from 'node:net';

export interface CutProxyOptions {
  target: { host: string; port: number };
  /**
   * bytes after which connection number N (0-based) is dropped; a function is asked once
   * per connection; undefined (or a function returning undefined) = never cut
   */
  cutAfter?: number | ((connection: number) => number | undefined);
  /** which bytes count: up = client to server, down = server to client, both = either (default both) */
  direction?: 'up' | 'down' | 'both';
  /**
   * what a cut does: reset = drop the connection with a TCP RST (default); hang = keep it
   * open but forward nothing more either way, like a black-holed route (keepalives and
   * timeouts must notice it)
   */
  onCut?: 'reset' | 'hang';
}

export interface CutProxy {
  host: '127.0.0.1';
  port: number;
  /** connections accepted so far */
  readonly connections: number;
  /** connections cut so far */
  readonly cuts: number;
  /** bytes forwarded in each direction, over all connections */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** change the rule for connections accepted from now on */
  setCutAfter(rule: CutProxyOptions['cutAfter']): void;
  /** black-hole every open connection now: nothing more is forwarded, nothing is closed */
  hangAll(): void;
  /** reset every open connection now */
  resetAll(): void;
  close(): Promise<void>;
}

export async function startCutProxy(options: CutProxyOptions): Promise<CutProxy> {
  let rule = options.cutAfter;
  const direction = options.direction ?? 'both';
  let connections = 0;
  let cuts = 0;
  let bytesUp = 0;
  let bytesDown = 0;
  const open = new Set<Socket>();
  const cutters = new Set<(how: 'reset' | 'hang') => void>();

  // TCP_NODELAY both ways: each chunk is forwarded as it came, as without a proxy (with
  // Nagle, a small packet written right after another waited for the far side's delayed
  // ACK: ~40 ms per SSH handshake step)
  const server = createServer({ noDelay: true }, (client) => {
    const n = connections++;
    const limit = typeof rule === 'function' ? rule(n) : rule;
    const upstream = connect({ port: options.target.port, host: options.target.host, noDelay: true });
    open.add(client);
    open.add(upstream);
    let counted = 0;
    let dead = false;
    let cutting = false;
    let how: 'reset' | 'hang' = options.onCut ?? 'reset';
    const drop = (): void => {
      if (dead) return;
      dead = true;
      cutters.delete(cutNowBy);
      if (how === 'hang') {
        // swallow everything from now on; close() or the peers' own timeouts end it
        client.on('data', () => {});
        upstream.on('data', () => {});
        return;
      }
      for (const s of [client, upstream]) {
        if (typeof s.resetAndDestroy === 'function' && !s.destroyed && s.readyState !== 'opening') s.resetAndDestroy();
        else s.destroy();
      }
    };
    const forward = (from: Socket, to: Socket, dir: 'up' | 'down'): void => {
      from.on('data', (chunk: Buffer) => {
        if (dead) return;
        let part = chunk;
        const counts = direction === 'both' || direction === dir;
        if (counts && limit !== undefined) {
          const left = limit - counted;
          if (part.length >= left) part = part.subarray(0, Math.max(0, left));
          counted += part.length;
        }
        if (dir === 'up') bytesUp += part.length;
        else bytesDown += part.length;
        const cutNow = counts && limit !== undefined && counted >= limit && !cutting;
        if (cutNow) {
          cutting = true;
          cuts++;
        }
        if (part.length > 0) {
          // on a cut, the reset waits until the last bytes have been handed to the kernel
          const flushed = cutNow ? () => setImmediate(drop) : undefined;
          if (!to.write(part, flushed)) {
            from.pause();
            to.once('drain', () => from.resume());
          }
        } else if (cutNow) setImmediate(drop);
      });
      from.on('end', () => to.end());
    };
    const cutNowBy = (h: 'reset' | 'hang'): void => {
      how = h;
      if (!cutting) {
        cutting = true;
        cuts++;
      }
      drop();
    };
    cutters.add(cutNowBy);
    forward(client, upstream, 'up');
    forward(upstream, client, 'down');
    for (const s of [client, upstream]) {
      s.on('error', () => drop());
      s.on('close', () => {
        open.delete(s);
        if (!dead) drop();
        else {
          // a hung connection ends when either peer gives up on it
          client.destroy();
          upstream.destroy();
        }
      });
    }
    if (limit === 0) {
      cuts++;
      drop();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    host: '127.0.0.1',
    port,
    get connections() {
      return connections;
    },
    get cuts() {
      return cuts;
    },
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    setCutAfter(r) {
      rule = r;
    },
    hangAll() {
      for (const c of [...cutters]) c('hang');
    },
    resetAll() {
      for (const c of [...cutters]) c('reset');
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
