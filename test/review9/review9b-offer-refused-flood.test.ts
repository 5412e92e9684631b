// review9b: c54a88f bounds the offers a peer keeps *open*, but an offer this side refuses at
// once (a codec it does not know, over max_bag or max_jobs_per_bag) is resolved before the
// next arrives: a peer offering such bags without end never has one open, and every one is
// kept for the session (SessionState's inb entry, the result's refusedByUs: all of them
// printed in sync's 75 line). The same peer that c54a88f ends must be ended here too.

import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { FRAME, FrameDecoder, type Frame } from '../../lib/session/frame.js';
import { decodeError, encodeHello, encodeOffer } from '../../lib/session/messages.js';
import { MAX_OPEN_OFFERS } from '../../lib/session/state.js';
import { runSession } from '../../lib/session/session.js';
import { createPair } from '../../lib/transport/pair.js';
import { CAPS, makeSite, store, tempDir } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('offers refused without end', () => {
  it('a peer whose offers are all refused at once (over max_bag) is ended with a protocol error, not answered for ever', async () => {
    const t = tempDir('r9b-refused');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair({ highWaterMark: 1024 * 1024 });
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 1000 });
    run.catch(() => {});
    const frames: Frame[] = [];
    const dec = new FrameDecoder();
    near.input.on('data', (c: Buffer) => {
      const r = dec.push(c);
      if (r.ok) frames.push(...r.value);
    });
    near.output.write(encodeHello({ site: 'home', peer: 'hub', codecs: ['br', 'gzip', 'none'], ...CAPS, keepalive: 500, software: 'fake', progress: true }));
    const n = 3 * MAX_OPEN_OFFERS;
    for (let k = 0; k < 3; k++) {
      const batch: Buffer[] = [];
      for (let i = k * MAX_OPEN_OFFERS; i < (k + 1) * MAX_OPEN_OFFERS; i++) {
        batch.push(encodeOffer({ bag: createHash('sha256').update(`bag ${i}`).digest('hex'), size: CAPS.maxBag + 1, codec: 'br', jobs: 1 }));
      }
      near.output.write(Buffer.concat(batch));
    }
    // bounded wait: until an ERROR, or every offer refused
    const until = Date.now() + 30_000;
    while (Date.now() < until && !frames.some((f) => f.type === FRAME.ERROR) && frames.filter((f) => f.type === FRAME.REFUSE).length < n) {
      await new Promise((r) => setTimeout(r, 50));
    }
    near.output.end();
    await run.catch(() => undefined);
    const refused = frames.filter((f) => f.type === FRAME.REFUSE).length;
    const error = frames.find((f) => f.type === FRAME.ERROR);
    expect({ refused: Math.min(refused, MAX_OPEN_OFFERS + 1), error: error && decodeError(error.payload).code }).toEqual({ refused: MAX_OPEN_OFFERS, error: 'protocol' });
  }, 60_000);
});
