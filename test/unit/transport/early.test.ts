// dialEarly (lib/transport/early.ts): the link `mailbag sync` dials before it has its
// spool and lock is handed over once, and one nobody took is torn down, bounded, whether
// it is up yet or still connecting.
import { describe, expect, it } from 'vitest';
import { SessionError } from '../../../lib/errors.js';
import { dialEarly, RELEASE_MS } from '../../../lib/transport/early.js';
import { pairTransport } from '../../../lib/transport/pair.js';
import type { ConnectOptions, Link, Transport } from '../../../lib/transport/types.js';

describe('dialEarly', () => {
  it('starts connecting at once and hands the same link over, once', async () => {
    const far: Link[] = [];
    let connects = 0;
    const inner = pairTransport((l) => far.push(l));
    const early = dialEarly(async () => ({ describe: () => 'pair', connect: (o?: ConnectOptions) => (connects++, inner.connect(o)) }), 'peer hub');
    // dialled before anyone asks
    await new Promise((r) => setImmediate(r));
    expect(connects).toBe(1);
    const link = await early.transport.connect();
    expect(early.transport.describe()).toBe('pair');
    await expect(early.transport.connect()).rejects.toThrow(/taken already/);
    // a release after the hand-over leaves the link alone
    await early.release();
    expect(connects).toBe(1);
    const got = new Promise<string>((r) => far[0]!.input.once('data', (d: Buffer) => r(String(d))));
    link.output.write('ping');
    expect(await got).toBe('ping');
    link.abort();
    far[0]!.abort();
  });

  it('release() tears down a link nobody took', async () => {
    const far: Link[] = [];
    const early = dialEarly(async () => pairTransport((l) => far.push(l)), 'peer hub');
    await new Promise((r) => setTimeout(r, 10));
    expect(far).toHaveLength(1);
    await early.release();
    const end = await far[0]!.done;
    expect(end.ok).toBe(false);
  });

  it('release() aborts a connection still being made, within its bound', async () => {
    let aborted: unknown;
    const slow: Transport = {
      describe: () => 'slow',
      connect: (o?: ConnectOptions) =>
        new Promise<Link>((_, reject) => {
          o?.signal?.addEventListener('abort', () => {
            aborted = o.signal?.reason;
            reject(new SessionError('link', 'connect aborted'));
          });
        }),
    };
    const early = dialEarly(async () => slow, 'peer hub');
    await new Promise((r) => setImmediate(r));
    const t0 = Date.now();
    await early.release();
    expect(Date.now() - t0).toBeLessThan(RELEASE_MS);
    expect(aborted).toBeInstanceOf(Error);
    // and it cannot be taken after that
    await expect(early.transport.connect()).rejects.toThrow(/taken already/);
  });

  it('a transport that cannot be made is the taker\'s error, as connect() would give it', async () => {
    const early = dialEarly(async () => {
      throw new SessionError('config', 'peers.hub.host is not set');
    }, 'peer hub');
    await expect(early.transport.connect()).rejects.toMatchObject({ code: 'config' });
    await early.release();
  });
});
