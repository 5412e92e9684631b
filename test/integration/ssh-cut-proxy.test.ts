// The cut proxy the resume tests rely on: exactly N bytes get through, then both ends
// see the connection die; later connections follow their own rule.
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCutProxy } from '../helpers/cut-proxy.js';

let echo: Server;
let port: number;

beforeAll(async () => {
  echo = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  port = (echo.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => echo.close(() => r())));

/** send `bytes`, count what comes back until the connection ends either way */
async function exchange(p: number, bytes: number): Promise<{ back: number; error: boolean }> {
  const s: Socket = connect(p, '127.0.0.1');
  let back = 0;
  let error = false;
  let allBack!: () => void;
  const gotAll = new Promise<void>((r) => (allBack = r));
  s.on('data', (d: Buffer) => {
    back += d.length;
    if (back >= bytes) allBack();
  });
  s.on('error', () => (error = true));
  await once(s, 'connect');
  s.write(Buffer.alloc(bytes, 1));
  await Promise.race([gotAll, new Promise((r) => s.once('close', r)), new Promise((r) => setTimeout(r, 5000))]);
  s.destroy();
  return { back, error };
}

describe('cut proxy', () => {
  it('lets exactly N upstream bytes through, then resets the connection', async () => {
    const proxy = await startCutProxy({ target: { host: '127.0.0.1', port }, cutAfter: 100_000, direction: 'up' });
    try {
      const r = await exchange(proxy.port, 1_000_000);
      expect(proxy.bytesUp).toBe(100_000);
      expect(r.back).toBeLessThanOrEqual(100_000);
      expect(proxy.cuts).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('applies a rule per connection: cut the first two, not the third', async () => {
    const proxy = await startCutProxy({ target: { host: '127.0.0.1', port }, cutAfter: (n) => (n < 2 ? 5000 * (n + 1) : undefined) });
    try {
      const first = await exchange(proxy.port, 50_000);
      const second = await exchange(proxy.port, 50_000);
      const third = await exchange(proxy.port, 50_000);
      expect(first.back).toBeLessThan(50_000);
      expect(second.back).toBeLessThan(50_000);
      expect(third.back).toBe(50_000);
      expect(proxy.connections).toBe(3);
      expect(proxy.cuts).toBe(2);
    } finally {
      await proxy.close();
    }
  });
});

describe('cut proxy, on demand', () => {
  it('hangAll black-holes open connections; resetAll drops them', async () => {
    const proxy = await startCutProxy({ target: { host: '127.0.0.1', port } });
    try {
      const s = connect(proxy.port, '127.0.0.1');
      s.on('error', () => {});
      let back = 0;
      s.on('data', (d: Buffer) => (back += d.length));
      await once(s, 'connect');
      s.write('ping');
      for (let i = 0; i < 100 && back < 4; i++) await new Promise((r) => setTimeout(r, 10));
      expect(back).toBe(4);
      proxy.hangAll();
      s.write('lost');
      await new Promise((r) => setTimeout(r, 200));
      expect(back).toBe(4);
      expect(s.destroyed).toBe(false);
      proxy.resetAll();
      s.destroy();
      expect(proxy.cuts).toBe(1);
    } finally {
      await proxy.close();
    }
  });
});
