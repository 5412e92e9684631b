// The session's bookkeeping, pure: which bags each side offered, answered, received
// and resolved, and whether the session may end. The driver feeds it every decoded
// frame and every local step; it answers whether that frame is allowed now (a frame
// out of order is a protocol error) and what follows. No I/O, no clock.

import type { Result } from '../errors.js';
import { FRAME, type Frame, decodeData, frameName } from './frame.js';
import {
  decodeAck, decodeAnswer, decodeError, decodeHello, decodeOffer, decodeRefuse,
  type Ack, type Answer, type ErrorMessage, type Hello, type Offer, type Refuse,
} from './messages.js';

/** What a received frame means, once checked against the state. */
export type Incoming =
  | { kind: 'hello'; hello: Hello }
  | { kind: 'error'; error: ErrorMessage }
  | { kind: 'ping' }
  | { kind: 'bye' }
  | { kind: 'offer'; offer: Offer; over?: true }
  | { kind: 'data'; bag: string; offset: number; chunk: Buffer; complete: boolean }
  | { kind: 'done' }
  | { kind: 'answer'; answer: Answer }
  | { kind: 'ack'; ack: Ack }
  | { kind: 'refuse'; refuse: Refuse }
  | { kind: 'progress'; bytes: number };

type OutState = 'offered' | 'sending' | 'sent' | 'resolved';
type InState = 'offered' | 'receiving' | 'complete' | 'resolved';

interface InBag {
  offer: Offer;
  state: InState;
  /** the next offset expected in DATA */
  next: number;
}

/**
 * bags offered to us and not yet answered `have`, acknowledged or refused, at most: each
 * holds a little memory here and in the driver, so a peer offering without end would grow
 * it without bound (a sender keeps at most OFFER_WINDOW open, below)
 */
export const MAX_OPEN_OFFERS = 10_000;
/** bags a sender keeps offered and unresolved at once; it offers more as they resolve */
export const OFFER_WINDOW = 1_000;

export class SessionState {
  helloSent = false;
  peerHello: Hello | undefined;
  doneSent = false;
  doneReceived = false;
  byeSent = false;
  byeReceived = false;
  private readonly out = new Map<string, { state: OutState; size: number }>();
  /** we said `progress` in our HELLO: PROGRESS frames are allowed */
  progressOffered = false;
  /** DATA payload bytes we have sent, and the peer's last PROGRESS */
  dataSent = 0;
  progress = 0;
  private readonly inb = new Map<string, InBag>();
  /** bags of inb not resolved */
  private openIn = 0;
  /** bags of out not resolved */
  private openOut = 0;

  /** Check a received frame against the state and decode it. */
  receive(frame: Frame): Result<Incoming, 'protocol'> {
    const bad = (message: string): Result<Incoming, 'protocol'> => ({ ok: false, issue: { code: 'protocol', message } });
    if (frame.type === FRAME.ERROR) return { ok: true, value: { kind: 'error', error: decodeError(frame.payload) } };
    if (!this.peerHello) {
      if (frame.type !== FRAME.HELLO) return bad(`${frameName(frame.type)} before HELLO`);
      const h = decodeHello(frame.payload);
      if (!h.ok) return h;
      this.peerHello = h.value;
      return { ok: true, value: { kind: 'hello', hello: h.value } };
    }
    if (this.byeReceived) return bad(`${frameName(frame.type)} after BYE`);
    switch (frame.type) {
      case FRAME.HELLO:
        return bad('a second HELLO');
      case FRAME.PING:
        return { ok: true, value: { kind: 'ping' } };
      case FRAME.BYE:
        if (!this.doneReceived) return bad('BYE before DONE');
        for (const [bag, b] of this.out) if (b.state !== 'resolved') return bad(`BYE while bag ${bag.slice(0, 12)} is unanswered`);
        this.byeReceived = true;
        return { ok: true, value: { kind: 'bye' } };
      case FRAME.OFFER: {
        if (this.doneReceived) return bad('OFFER after DONE');
        const o = decodeOffer(frame.payload);
        if (!o.ok) return o;
        const known = this.inb.get(o.value.bag);
        if (known && known.state !== 'resolved') return bad(`bag ${o.value.bag.slice(0, 12)} offered twice`);
        // over the cap (a sender of a build before the offer window, with a large backlog):
        // not kept, refused at once (REFUSE busy); the sender keeps the bag and offers it again
        if (this.openIn >= MAX_OPEN_OFFERS) return { ok: true, value: { kind: 'offer', offer: o.value, over: true } };
        this.inb.set(o.value.bag, { offer: o.value, state: 'offered', next: -1 });
        this.openIn++;
        return { ok: true, value: { kind: 'offer', offer: o.value } };
      }
      case FRAME.DATA: {
        const d = decodeData(frame.payload);
        if (!d.ok) return d;
        const b = this.inb.get(d.value.bag);
        if (!b || b.state !== 'receiving') return bad(`DATA for bag ${d.value.bag.slice(0, 12)} that is not being received`);
        if (d.value.offset !== b.next) return bad(`DATA at offset ${d.value.offset}, expected ${b.next}`);
        const end = b.next + d.value.chunk.length;
        if (end > b.offer.size) return bad(`DATA past the end of bag ${d.value.bag.slice(0, 12)} (${b.offer.size} bytes)`);
        b.next = end;
        const complete = end === b.offer.size;
        if (complete) b.state = 'complete';
        return { ok: true, value: { kind: 'data', bag: d.value.bag, offset: d.value.offset, chunk: d.value.chunk, complete } };
      }
      case FRAME.DONE:
        if (this.doneReceived) return bad('a second DONE');
        this.doneReceived = true;
        return { ok: true, value: { kind: 'done' } };
      case FRAME.ANSWER: {
        const a = decodeAnswer(frame.payload);
        if (!a.ok) return a;
        const b = this.out.get(a.value.bag);
        if (!b || b.state !== 'offered') return bad(`ANSWER for bag ${a.value.bag.slice(0, 12)} that was not offered`);
        if ('from' in a.value && a.value.from > b.size) return bad(`ANSWER from ${a.value.from}, past the end of the bag`);
        b.state = 'have' in a.value ? 'resolved' : 'sending';
        if (b.state === 'resolved') this.openOut--;
        return { ok: true, value: { kind: 'answer', answer: a.value } };
      }
      case FRAME.ACK: {
        const a = decodeAck(frame.payload);
        if (!a.ok) return a;
        const b = this.out.get(a.value.bag);
        if (!b || (b.state !== 'sent' && b.state !== 'sending')) return bad(`ACK for bag ${a.value.bag.slice(0, 12)} that was not sent`);
        b.state = 'resolved';
        this.openOut--;
        return { ok: true, value: { kind: 'ack', ack: a.value } };
      }
      case FRAME.REFUSE: {
        const r = decodeRefuse(frame.payload);
        if (!r.ok) return r;
        const b = this.out.get(r.value.bag);
        if (!b || b.state === 'resolved') return bad(`REFUSE for bag ${r.value.bag.slice(0, 12)} that is not pending`);
        b.state = 'resolved';
        this.openOut--;
        return { ok: true, value: { kind: 'refuse', refuse: r.value } };
      }
      case FRAME.PROGRESS: {
        if (!this.progressOffered) return bad('PROGRESS, but this side did not offer flow control');
        if (frame.payload.length !== 8) return bad('PROGRESS payload is not 8 bytes');
        const n = frame.payload.readBigUInt64BE(0);
        if (n > BigInt(this.dataSent)) return bad(`PROGRESS ${n} past the ${this.dataSent} DATA bytes sent`);
        if (Number(n) < this.progress) return bad(`PROGRESS ${n} went back from ${this.progress}`);
        this.progress = Number(n);
        return { ok: true, value: { kind: 'progress', bytes: this.progress } };
      }
      default:
        return bad(`unexpected frame ${frameName(frame.type)}`);
    }
  }

  // --- our own steps (the driver calls these as it sends) ---

  /** true when this bag may be offered now (not already pending in this session) */
  canOffer(bag: string): boolean {
    const b = this.out.get(bag);
    return !b || b.state === 'resolved';
  }

  offered(offer: Offer): void {
    const before = this.out.get(offer.bag);
    if (!before || before.state === 'resolved') this.openOut++;
    this.out.set(offer.bag, { state: 'offered', size: offer.size });
  }

  /** all DATA of an answered bag has been written */
  sentAll(bag: string): void {
    const b = this.out.get(bag);
    if (b && b.state === 'sending') b.state = 'sent';
  }

  /** we answered `from` N: DATA is expected from N (a bag already complete needs none) */
  answeredFrom(bag: string, from: number): void {
    const b = this.inb.get(bag);
    if (!b) return;
    b.next = from;
    b.state = from === b.offer.size ? 'complete' : 'receiving';
  }

  /** we answered `have`, acknowledged or refused an incoming bag */
  resolvedIncoming(bag: string): void {
    const b = this.inb.get(bag);
    if (b && b.state !== 'resolved') {
      b.state = 'resolved';
      this.openIn--;
    }
    // nothing of it is needed any more (offered again, it is a new offer; DATA for it is
    // refused as for a bag never offered): kept, a peer offering bag after bag that is
    // refused at once grew this map without bound
    this.inb.delete(bag);
  }

  /** incoming bags remembered (for tests: bounded by the open offers) */
  get incomingRemembered(): number {
    return this.inb.size;
  }

  /** bags we offered that are still waiting for an answer, ACK or REFUSE */
  get outstanding(): number {
    return this.openOut;
  }

  /** bags offered to us not yet resolved */
  get incomingOpen(): number {
    return this.openIn;
  }

  /** our part is finished: we may send BYE */
  get finished(): boolean {
    return this.doneSent && this.outstanding === 0 && this.doneReceived && this.incomingOpen === 0;
  }
}
