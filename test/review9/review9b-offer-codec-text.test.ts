// review9b: 4f560f3 defuses a peer's words in ERROR, REFUSE and HELLO, but an OFFER's codec
// is any string (decodeOffer checks only that it is one), and an unknown codec is refused
// with a message quoting it: the refusal is kept in refusedByUs, and sync/serve print it
// (checkDrained) on the admin's terminal and in logs as the peer wrote it.

import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { FRAME, FrameDecoder, encodeFrame, type Frame } from '../../lib/session/frame.js';
import { encodeHello, encodeOffer } from '../../lib/session/messages.js';
import { runSession } from '../../lib/session/session.js';
import { checkDrained } from '../../lib/cli/sync.js';
import { createPair } from '../../lib/transport/pair.js';
import type { BagCodec } from '../../lib/session/messages.js';
import { CAPS, makeSite, store, tempDir } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('an OFFER whose codec carries control characters', () => {
  it('is refused, and the refusal sync prints holds no control character', async () => {
    const t = tempDir('r9b-codec');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 500 });
    run.catch(() => {});
    const frames: Frame[] = [];
    const dec = new FrameDecoder();
    near.input.on('data', (c: Buffer) => {
      const r = dec.push(c);
      if (r.ok) frames.push(...r.value);
    });
    near.output.write(encodeHello({ site: 'home', peer: 'hub', codecs: ['br', 'gzip', 'none'], ...CAPS, keepalive: 500, software: 'fake', progress: true }));
    const codec = 'br\x1b]0;pwned\x07\x1b[2J\n2.0.0 mailbag: all delivered' as BagCodec;
    near.output.write(encodeOffer({ bag: createHash('sha256').update('x').digest('hex'), size: 10, codec, jobs: 1 }));
    near.output.write(encodeFrame(FRAME.DONE));
    const until = Date.now() + 10_000;
    while (Date.now() < until && !frames.some((f) => f.type === FRAME.BYE)) await new Promise((r) => setTimeout(r, 20));
    near.output.write(encodeFrame(FRAME.BYE));
    near.output.end();
    const result = await run;
    expect(result.refusedByUs).toHaveLength(1);
    let said = '';
    try {
      checkDrained('home', result);
    } catch (e) {
      said = (e as Error).message;
    }
    expect(said).toContain('unknown codec');
    // eslint-disable-next-line no-control-regex
    expect(said).not.toMatch(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/);
  });
});
