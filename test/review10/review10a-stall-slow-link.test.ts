// review10a: the stall limit (47faa81, 53ddb1f) against an honest slow session: a bag
// that does not compress (random bytes) crossing a link throttled to 64 KiB/s in each
// direction, both sides real sessions with real stores, their stall time shortened to
// 1.5 s (its default is an hour) and their idle limit to 3 s. The transfer takes several
// stall times; the sender's DATA going out and the receiver's PROGRESS keep both sides
// "moving", so neither may end the session. Checks what the commits claim; passes on main.

import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { createPair } from '../../lib/transport/pair.js';
import { enqueue, ids, makeSite, session, tempDir } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** passes bytes on at `rate` bytes a second, in pieces of at most 4 KiB */
class Throttle extends Transform {
  constructor(private readonly rate: number) {
    super({ highWaterMark: 16 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let at = 0;
    const next = (): void => {
      if (at >= chunk.length) return cb();
      const piece = chunk.subarray(at, at + 4096);
      at += piece.length;
      this.push(piece);
      setTimeout(next, (piece.length / this.rate) * 1000);
    };
    next();
  }
}

it('a bag that takes several stall times to cross a slow link is delivered, neither side stalled', async () => {
  const t = tempDir('review10a-stall');
  cleanups.push(t.remove);
  const home = await makeSite(t.dir, 'home');
  const hub = await makeSite(t.dir, 'hub');
  // ~400 KB of base64 of random bytes: compresses to ~300 KB, ~5 s at 64 KiB/s
  const body = Buffer.concat([Buffer.from('Subject: big\n\n'), Buffer.from(randomBytes(300 * 1024).toString('base64'))]);
  const sent = await enqueue(home, 'hub', [body]);
  // home's link and hub's link, joined through a throttle each way
  const [homeLink, homeFar] = createPair({ names: ['home', 'wire-a'] });
  const [hubFar, hubLink] = createPair({ names: ['wire-b', 'hub'] });
  homeFar.input.pipe(new Throttle(64 * 1024)).pipe(hubFar.output);
  hubFar.input.pipe(new Throttle(64 * 1024)).pipe(homeFar.output);
  const opts = { keepaliveMs: 200, idleTimeoutMs: 3000, stallTimeoutMs: 1500 };
  const started = performance.now();
  const [a, b] = await Promise.all([session(home, 'hub', homeLink, { ...opts, scanEarly: true }), session(hub, 'home', hubLink, opts)]);
  const took = performance.now() - started;
  // the transfer really took several stall times (else the test says nothing)
  expect(took).toBeGreaterThan(3 * opts.stallTimeoutMs);
  expect(a.drained && b.drained).toBe(true);
  expect(ids(hub, 'in', 'home')).toEqual([...sent.keys()]);
  expect(ids(home, 'out', 'hub')).toEqual([]);
}, 60_000);
