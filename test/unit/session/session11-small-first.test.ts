// session11 (req-audit11 R1): small mail is not held behind a resumed attachment. A pending
// bag from an earlier session (a cut or crash left it) went out before every new bag, so
// the small mail queued since waited for the whole rest of the attachment: on a slow link
// minutes, after every cut. A pending bag of a large job is now offered with the large bags,
// after the small ones. Over an in-process link limited to 4 MB/s each way (on the unlimited
// pair the 3 MB left cross in the milliseconds the small bag's commit takes).

import { randomBytes } from 'node:crypto';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionError } from '../../../lib/errors.js';
import type { SessionProgress } from '../../../lib/session/session.js';
import { BaseLink } from '../../../lib/transport/link.js';
import { createPair } from '../../../lib/transport/pair.js';
import type { Link } from '../../../lib/transport/types.js';
import { enqueue, ids, makeSite, messages, session, tempDir } from './sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** passes at most `perTick` bytes every 10 ms */
class Throttle extends Transform {
  constructor(private readonly perTick: number) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const step = (off: number): void => {
      if (off >= chunk.length) return cb();
      this.push(chunk.subarray(off, off + this.perTick));
      setTimeout(() => step(off + this.perTick), 10);
    };
    step(0);
  }
}

/** two Links back to back through a throttle each way */
function slowPair(bytesPerSecond: number): [Link, Link] {
  const perTick = Math.max(1, Math.floor(bytesPerSecond / 100));
  const aOut = new PassThrough();
  const bOut = new PassThrough();
  const aToB = new Throttle(perTick);
  const bToA = new Throttle(perTick);
  aOut.pipe(aToB);
  bOut.pipe(bToA);
  const links: BaseLink[] = [];
  const teardown = (error: Error | undefined): void => {
    for (const l of links) l.settle({ ok: false, error: new SessionError('link', `aborted${error ? `: ${error.message}` : ''}`) });
    for (const s of [aOut, bOut, aToB, bToA]) s.destroy();
  };
  const a = new BaseLink({ input: bToA, output: aOut, describe: 'slow:a', teardown });
  const b = new BaseLink({ input: aToB, output: bOut, describe: 'slow:b', teardown });
  links.push(a, b);
  let ended = 0;
  const one = (): void => {
    if (++ended === 2) for (const l of links) l.settle({ ok: true });
  };
  aToB.on('end', one);
  bToA.on('end', one);
  return [a, b];
}

describe('small mail queued after a cut attachment', () => {
  it('is committed before the resumed attachment has crossed a fifth of its rest (4 MB/s link)', async () => {
    const t = tempDir('s11-small-first');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const big = await enqueue(hub, 'home', [randomBytes(6_000_000)]);
    // the first session cut half-way through the attachment: its bag is pending at hub
    const [a, b] = createPair({ cutAfterBtoA: 3_000_000 });
    await Promise.allSettled([session(home, 'hub', a), session(hub, 'home', b)]);
    expect(ids(home, 'in', 'hub')).toEqual([]);
    const small = await enqueue(hub, 'home', messages([600, 1500, 3000, 9000, 20000], 8));
    let at: number | undefined;
    const onProgress = (p: SessionProgress): void => {
      if (at === undefined && p.receivedJobs >= small.size) at = p.receivedBytes;
    };
    const [c, d] = slowPair(4_000_000);
    const [r] = await Promise.all([session(home, 'hub', c, { onProgress }), session(hub, 'home', d)]);
    expect(r.received.jobs).toBe(1 + small.size);
    expect(ids(home, 'in', 'hub')).toEqual([...big.keys(), ...small.keys()].sort());
    // before: the small mail came after the whole resumed rest (~3 MB)
    expect(at, `small mail committed after ${at} of ${r.received.bytes} bytes`).toBeLessThan(600_000);
  }, 60_000);
});
