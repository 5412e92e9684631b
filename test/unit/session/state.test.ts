// The session bookkeeping: which frames are allowed when, and when a side has finished.

import { describe, expect, it } from 'vitest';
import { FRAME, encodeDataHead, encodeFrame, encodeProgress, type Frame } from '../../../lib/session/frame.js';
import { decodeHello } from '../../../lib/session/messages.js';
import { encodeAck, encodeAnswer, encodeHello, encodeOffer } from '../../../lib/session/messages.js';
import { SessionState } from '../../../lib/session/state.js';

const asFrame = (b: Buffer): Frame => ({ type: b[0] as Frame['type'], payload: b.subarray(5) });
const hello = asFrame(encodeHello({ site: 'hub', peer: 'home', codecs: ['br'], maxBag: 9, maxExpanded: 9, maxJobs: 9, maxJob: 9, keepalive: 1, software: '' }));
const BAG = 'd'.repeat(64);

function started(): SessionState {
  const s = new SessionState();
  expect(s.receive(hello).ok).toBe(true);
  return s;
}

describe('SessionState', () => {
  it('wants HELLO first, once', () => {
    const s = new SessionState();
    const r = s.receive(asFrame(encodeFrame(FRAME.DONE)));
    expect(!r.ok && r.issue.message).toBe('DONE before HELLO');
    const t = started();
    expect(t.receive(hello).ok).toBe(false);
  });

  it('tracks an incoming bag from offer to complete DATA at the answered offset', () => {
    const s = started();
    expect(s.receive(asFrame(encodeOffer({ bag: BAG, size: 6, codec: 'br', jobs: 1 }))).ok).toBe(true);
    expect(s.receive(asFrame(encodeOffer({ bag: BAG, size: 6, codec: 'br', jobs: 1 }))).ok).toBe(false);
    s.answeredFrom(BAG, 2);
    const at = (off: number, n: number): Frame => asFrame(Buffer.concat([encodeDataHead(BAG, off, n), Buffer.alloc(n)]));
    expect(s.receive(at(0, 2)).ok).toBe(false);
    const r = s.receive(at(2, 4));
    expect(r.ok && r.value.kind === 'data' && r.value.complete).toBe(true);
    expect(s.incomingOpen).toBe(1);
    s.resolvedIncoming(BAG);
    expect(s.receive(asFrame(encodeFrame(FRAME.DONE))).ok).toBe(true);
    s.doneSent = true;
    expect(s.finished).toBe(true);
  });

  it('refuses DATA past the end, ANSWER and ACK for bags never offered, BYE before DONE', () => {
    const s = started();
    s.receive(asFrame(encodeOffer({ bag: BAG, size: 3, codec: 'br', jobs: 1 })));
    s.answeredFrom(BAG, 0);
    expect(s.receive(asFrame(Buffer.concat([encodeDataHead(BAG, 0, 4), Buffer.alloc(4)]))).ok).toBe(false);
    const t = started();
    expect(t.receive(asFrame(encodeAnswer({ bag: BAG, from: 0 }))).ok).toBe(false);
    expect(t.receive(asFrame(encodeAck({ bag: BAG, jobs: 1, duplicates: 0 }))).ok).toBe(false);
    expect(t.receive(asFrame(encodeFrame(FRAME.BYE))).ok).toBe(false);
  });

  it('is not finished while one of our offers is unanswered', () => {
    const s = started();
    s.offered({ bag: BAG, size: 5, codec: 'br', jobs: 1 });
    s.doneSent = true;
    s.receive(asFrame(encodeFrame(FRAME.DONE)));
    expect(s.finished).toBe(false);
    expect(s.receive(asFrame(encodeAnswer({ bag: BAG, from: 0 }))).ok).toBe(true);
    s.sentAll(BAG);
    expect(s.finished).toBe(false);
    expect(s.receive(asFrame(encodeAck({ bag: BAG, jobs: 1, duplicates: 0 }))).ok).toBe(true);
    expect(s.finished).toBe(true);
  });

  it('takes PROGRESS only when it offered flow control, never past what it sent or going back', () => {
    const msg = (r: ReturnType<SessionState['receive']>): string | false => !r.ok && r.issue.message;
    const s = started();
    expect(msg(s.receive(asFrame(encodeProgress(0))))).toMatch(/did not offer flow control/);
    const t = started();
    t.progressOffered = true;
    t.dataSent = 1000;
    const r = t.receive(asFrame(encodeProgress(600)));
    expect(r.ok && r.value).toEqual({ kind: 'progress', bytes: 600 });
    expect(t.progress).toBe(600);
    expect(msg(t.receive(asFrame(encodeProgress(500))))).toMatch(/went back from 600/);
    expect(msg(t.receive(asFrame(encodeProgress(1001))))).toMatch(/past the 1000 DATA bytes sent/);
    expect(msg(t.receive({ type: FRAME.PROGRESS, payload: Buffer.alloc(4) }))).toMatch(/not 8 bytes/);
    expect(t.receive(asFrame(encodeProgress(1000))).ok).toBe(true);
  });

  it('reads the flow-control capability of a HELLO; an older HELLO without it has none', () => {
    const base = { site: 'hub', peer: 'home', codecs: ['br' as const], maxBag: 9, maxExpanded: 9, maxJobs: 9, maxJob: 9, keepalive: 1, software: '' };
    const withIt = decodeHello(encodeHello({ ...base, progress: true }).subarray(5));
    expect(withIt.ok && withIt.value.progress).toBe(true);
    const without = decodeHello(encodeHello(base).subarray(5));
    expect(without.ok && 'progress' in without.value).toBe(false);
  });

  it('keeps nothing of an incoming bag once it is resolved (bounded memory: a peer offering bag after bag refused at once)', () => {
    const s = started();
    for (let i = 0; i < 5000; i++) {
      const bag = i.toString(16).padStart(64, '0');
      expect(s.receive(asFrame(encodeOffer({ bag, size: 1e12, codec: 'br', jobs: 1 }))).ok).toBe(true);
      s.resolvedIncoming(bag); // refused too-big at its offer
    }
    expect(s.incomingRemembered).toBe(0);
    expect(s.incomingOpen).toBe(0);
    // what a resolved bag's entry decided is the same without it: offered again, taken as
    // a new offer; DATA for it, refused
    const bag = '0'.padStart(64, '0');
    const data = asFrame(Buffer.concat([encodeDataHead(bag, 0, 1), Buffer.alloc(1)]));
    const r = s.receive(data);
    expect(!r.ok && r.issue.message).toMatch(/not being received/);
    expect(s.receive(asFrame(encodeOffer({ bag, size: 6, codec: 'br', jobs: 1 }))).ok).toBe(true);
    expect(s.incomingOpen).toBe(1);
  });
});
