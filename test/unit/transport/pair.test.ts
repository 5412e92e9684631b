import { describe, expect, it } from 'vitest';
import { BaseLink, createPair, pairTransport, streamLink } from '../../../lib/transport/index.js';
import type { Link } from '../../../lib/transport/index.js';
import { PassThrough, Writable } from 'node:stream';

async function readAll(link: Link): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of link.input) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('createPair', () => {
  it('carries bytes both ways and reports a clean end', async () => {
    const [a, b] = createPair();
    const big = Buffer.alloc(300_000, 7);
    const gotB = readAll(b);
    const gotA = readAll(a);
    a.output.end(big);
    b.output.end(Buffer.from('pong'));
    expect((await gotB).equals(big)).toBe(true);
    expect((await gotA).toString()).toBe('pong');
    const [ea, eb] = await Promise.all([a.done, b.done]);
    expect(ea.ok).toBe(true);
    expect(eb.ok).toBe(true);
  });

  it('close() half-closes and resolves once the far side closes too', async () => {
    const [a, b] = createPair();
    const gotB = readAll(b);
    void readAll(a);
    a.output.write('x');
    const closing = a.close();
    expect((await gotB).toString()).toBe('x');
    await b.close();
    expect((await closing).ok).toBe(true);
  });

  it('cuts after exactly N bytes from a to b and both sides see a link error', async () => {
    const [a, b] = createPair({ cutAfterAtoB: 1000 });
    const received: Buffer[] = [];
    const reading = (async () => {
      try {
        for await (const c of b.input) received.push(c as Buffer);
        return 'eof';
      } catch (e) {
        return (e as { code?: string }).code;
      }
    })();
    a.output.write(Buffer.alloc(700, 1));
    a.output.write(Buffer.alloc(700, 2));
    expect(await reading).toBe('link');
    expect(Buffer.concat(received).length).toBe(1000);
    const [ea, eb] = await Promise.all([a.done, b.done]);
    expect(ea.ok).toBe(false);
    expect(ea.error?.code).toBe('link');
    expect(eb.error?.code).toBe('link');
  });

  it('cuts in the b to a direction too', async () => {
    const [a, b] = createPair({ cutAfterBtoA: 10 });
    let n = 0;
    const reading = (async () => {
      try {
        for await (const c of a.input) n += (c as Buffer).length;
      } catch {
        /* cut */
      }
    })();
    b.output.write(Buffer.alloc(100));
    await reading;
    expect(n).toBe(10);
    expect((await b.done).error?.code).toBe('link');
  });

  it('abort() on one side ends both with an error', async () => {
    const [a, b] = createPair();
    a.abort(new Error('protocol violation'));
    const [ea, eb] = await Promise.all([a.done, b.done]);
    expect(ea.ok).toBe(false);
    expect(eb.error?.message).toContain('protocol violation');
  });

  it('pairTransport hands the far link to the acceptor', async () => {
    const t = pairTransport((far) => {
      far.input.pipe(far.output); // echo
    });
    const link = await t.connect();
    const got = readAll(link);
    link.output.end('hello');
    expect((await got).toString()).toBe('hello');
    expect((await link.done).ok).toBe(true);
  });
});

describe('streamLink', () => {
  it('is done when input ended and output finished', async () => {
    const inp = new PassThrough();
    const out = new PassThrough();
    const link = streamLink(inp, out, 'test-stdio');
    out.resume();
    inp.end('abc');
    let s = '';
    for await (const c of link.input) s += String(c);
    link.output.end('reply');
    expect(s).toBe('abc');
    expect((await link.done).ok).toBe(true);
    expect(link.describe()).toBe('test-stdio');
  });

  it("close() is done once our output finished, without waiting for the far side's EOF (serve: the dialer waits for our exit)", async () => {
    const inp = new PassThrough();
    const out = new PassThrough();
    const link = streamLink(inp, out, 'test-stdio');
    const got: Buffer[] = [];
    out.on('data', (c: Buffer) => got.push(c));
    link.output.write('BYE');
    // the far side never ends its output: close() still returns, ok, within the test's time
    const end = await link.close();
    expect(end.ok).toBe(true);
    expect(Buffer.concat(got).toString()).toBe('BYE');
    expect(out.writableFinished).toBe(true);
    // nothing reads the input any more (an open stdin would keep serve's process up)
    expect(inp.destroyed).toBe(true);
  });

  it('close() still reports an output that cannot finish within the grace time', async () => {
    const inp = new PassThrough();
    // an output whose writes never complete (a far side that stopped reading)
    const out = new Writable({ write: () => {} });
    const link = new BaseLink({ input: inp, output: out, describe: 'stuck', teardown: () => out.destroy(), closeGraceMs: 50, closeWithoutEof: true });
    link.output.write('x');
    const end = await link.close();
    expect(end.ok).toBe(false);
    expect(end.error?.code).toBe('timeout');
  });
});

describe('createPair cut at 0', () => {
  it('delivers nothing and cuts at the first write', async () => {
    const [a, b] = createPair({ cutAfterAtoB: 0 });
    let n = 0;
    const reading = (async () => {
      try {
        for await (const c of b.input) n += (c as Buffer).length;
      } catch {
        /* cut */
      }
    })();
    a.output.write('x');
    await reading;
    expect(n).toBe(0);
    expect((await a.done).error?.code).toBe('link');
  });
});
