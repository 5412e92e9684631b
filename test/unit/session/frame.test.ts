// The frame codec and control messages: golden bytes, round trips fed in random chunk
// splits, and hostile input (unknown type, over the cap, bad JSON, wrong version).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DATA_PREFIX, FRAME, FrameDecoder, MAX_CONTROL, decodeData, encodeDataHead, encodeFrame, encodeJsonFrame, type Frame } from '../../../lib/session/frame.js';
import { chooseCodec, decodeAnswer, decodeHello, decodeOffer, encodeHello, encodeOffer, type Hello } from '../../../lib/session/messages.js';

const HELLO: Hello = { site: 'home', peer: 'hub', codecs: ['br', 'gzip'], maxBag: 1, maxExpanded: 2, maxJobs: 3, maxJob: 4, keepalive: 15000, software: 't' };

function feed(bytes: Buffer, cuts: number[]): Frame[] {
  const d = new FrameDecoder();
  const out: Frame[] = [];
  let at = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < bytes.length).sort((a, b) => a - b), bytes.length]) {
    const r = d.push(bytes.subarray(at, c));
    if (!r.ok) throw new Error(r.issue.message);
    out.push(...r.value);
    at = c;
  }
  return out;
}

describe('frames', () => {
  it('encodes type, big-endian length and payload (golden)', () => {
    expect(encodeFrame(FRAME.PING).toString('hex')).toBe('0300000000');
    expect(encodeJsonFrame(FRAME.ANSWER, { bag: 'x', from: 5 }).toString('hex')).toBe(`2000000014${Buffer.from('{"bag":"x","from":5}').toString('hex')}`);
    const hello = encodeHello(HELLO);
    expect(hello.subarray(0, 1).toString('hex')).toBe('01');
    expect(hello.subarray(5, 23).toString()).toBe('mailbag-session 1\n');
  });

  it('DATA carries the raw hash and a 64-bit offset', () => {
    const bag = 'ab'.repeat(32);
    const head = encodeDataHead(bag, 2 ** 40 + 3, 4);
    expect(head.length).toBe(5 + DATA_PREFIX);
    const frame = Buffer.concat([head, Buffer.from('wxyz')]);
    const [f] = feed(Buffer.concat([encodeHello(HELLO), frame]), []).slice(1);
    const d = decodeData(f!.payload);
    expect(d.ok && d.value).toEqual({ bag, offset: 2 ** 40 + 3, chunk: Buffer.from('wxyz') });
  });

  it('decodes any sequence of frames whatever the chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.nat(3000), { maxLength: 20 }), (payloads, cuts) => {
        const frames = [encodeHello(HELLO), ...payloads.map((p) => encodeFrame(FRAME.ERROR, Buffer.from(p)))];
        const got = feed(Buffer.concat(frames), cuts);
        expect(got.length).toBe(frames.length);
        got.slice(1).forEach((f, i) => expect(Buffer.compare(f.payload, Buffer.from(payloads[i]!))).toBe(0));
      }),
    );
  });

  it('refuses an unknown type and a length over the cap before reading the payload', () => {
    const d = new FrameDecoder();
    expect(d.push(encodeHello(HELLO)).ok).toBe(true);
    const big = Buffer.from([FRAME.OFFER, 0x7f, 0xff, 0xff, 0xff]);
    const r = d.push(big);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issue.message).toMatch(/too big: 2147483647 bytes, at most 65536/);
    expect(d.buffered).toBe(0);
    const d2 = new FrameDecoder();
    d2.push(encodeHello(HELLO));
    const r2 = d2.push(Buffer.from([0x7e, 0, 0, 0, 0]));
    expect(!r2.ok && r2.issue.message).toMatch(/unknown frame type 0x7e/);
    // a PING with a payload is over its cap of 0
    const d3 = new FrameDecoder();
    d3.push(encodeHello(HELLO));
    expect(d3.push(Buffer.from([FRAME.PING, 0, 0, 0, 1, 0])).ok).toBe(false);
    expect(() => encodeFrame(FRAME.OFFER, Buffer.alloc(MAX_CONTROL + 1))).toThrow(RangeError);
  });

  it('reports what a non-mailbag far side printed', () => {
    const r = new FrameDecoder().push(Buffer.from('This account is currently not available.\n'));
    expect(!r.ok && r.issue.message).toBe('peer did not speak mailbag: "This account is currently not available."');
  });
});

describe('messages', () => {
  it('HELLO round-trips; another version is refused by number', () => {
    const f = feed(encodeHello(HELLO), [])[0]!;
    const h = decodeHello(f.payload);
    expect(h.ok && h.value).toEqual(HELLO);
    const v2 = Buffer.from(`mailbag-session 2\n${JSON.stringify(HELLO)}`);
    const r = decodeHello(v2);
    expect(!r.ok && r.issue.message).toBe('unsupported session version 2 (this mailbag speaks 1)');
    expect(decodeHello(Buffer.from('SSH-2.0-OpenSSH\n{}')).ok).toBe(false);
  });

  it('HELLO with a bad site name, a negative cap or bad JSON is refused naming the field', () => {
    const bad = (o: unknown): string => {
      const r = decodeHello(Buffer.from(`mailbag-session 1\n${JSON.stringify(o)}`));
      return r.ok ? 'ok' : r.issue.message;
    };
    expect(bad({ ...HELLO, site: '../etc' })).toMatch(/site/);
    expect(bad({ ...HELLO, maxBag: -1 })).toMatch(/maxBag/);
    expect(decodeHello(Buffer.from('mailbag-session 1\n{"site":')).ok).toBe(false);
  });

  it('OFFER and ANSWER validate hashes and counts', () => {
    const bag = 'c'.repeat(64);
    const f = feed(Buffer.concat([encodeHello(HELLO), encodeOffer({ bag, size: 10, codec: 'br', jobs: 2 })]), [])[1]!;
    expect(decodeOffer(f.payload).ok).toBe(true);
    expect(decodeOffer(Buffer.from(JSON.stringify({ bag: 'C'.repeat(64), size: 1, codec: 'br', jobs: 1 }))).ok).toBe(false);
    expect(decodeOffer(Buffer.from(JSON.stringify({ bag, size: 1.5, codec: 'br', jobs: 1 }))).ok).toBe(false);
    expect(decodeAnswer(Buffer.from(JSON.stringify({ bag, from: 3 })))).toEqual({ ok: true, value: { bag, from: 3 } });
    expect(decodeAnswer(Buffer.from(JSON.stringify({ bag }))).ok).toBe(false);
  });

  it('chooses the sender\'s preferred codec that the receiver reads', () => {
    expect(chooseCodec(['gzip', 'br'], ['br', 'gzip'])).toBe('gzip');
    expect(chooseCodec(['br'], ['gzip'])).toBe('gzip');
    expect(chooseCodec(['br'], [])).toBeUndefined();
  });
});
