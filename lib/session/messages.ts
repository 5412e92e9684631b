// The payloads of the session's control frames (docs/protocol.md §2–§4), pure: each
// decoder takes untrusted bytes and returns a Result naming the field that is wrong;
// each encoder builds the frame. No I/O, no state.

import type { Result } from '../errors.js';
import { LIMITS } from '../limits.js';
import { FRAME, encodeFrame, encodeJsonFrame } from './frame.js';

export const SESSION_MAGIC = 'mailbag-session';
export const SESSION_VERSION = 1;
export const HELLO_LINE = `${SESSION_MAGIC} ${SESSION_VERSION}\n`;

export const CODECS = ['zstd', 'br', 'gzip', 'none'] as const;
export type BagCodec = (typeof CODECS)[number];

const NAME_RE = /^[a-z0-9][a-z0-9.-]*$/;
const HASH_RE = /^[0-9a-f]{64}$/;

export interface Hello {
  site: string;
  peer: string;
  codecs: BagCodec[];
  maxBag: number;
  maxExpanded: number;
  maxJobs: number;
  maxJob: number;
  keepalive: number;
  software: string;
  /** it reads PROGRESS frames and sends them as a receiver (flow control, docs/protocol.md §3) */
  progress?: boolean;
}

export interface Offer {
  bag: string;
  size: number;
  codec: BagCodec;
  jobs: number;
}

export type Answer = { bag: string; have: true } | { bag: string; from: number };

export interface Ack {
  bag: string;
  jobs: number;
  duplicates: number;
}

export interface Refuse {
  bag: string;
  code: string;
  message: string;
  /** the job the refusal is about, when it is about one job of the bag */
  job?: string | undefined;
}

export interface ErrorMessage {
  code: string;
  message: string;
}

type R<T> = Result<T, 'protocol'>;

function bad<T>(message: string): R<T> {
  return { ok: false, issue: { code: 'protocol', message } };
}

function parseObject(what: string, payload: Buffer): R<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return bad(`${what}: payload is not UTF-8 JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(`${what}: payload is not a JSON object`);
  return { ok: true, value: v as Record<string, unknown> };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length <= LIMITS.maxNameLength && NAME_RE.test(v);
}

export function isBagHash(v: unknown): v is string {
  return typeof v === 'string' && HASH_RE.test(v);
}

/**
 * A peer's words (ERROR and REFUSE messages, its software), as printed on the admin's
 * terminal and in logs: a line break becomes a space (no forged line of our own) and any
 * other control character a '?' (no escape sequence retitling or clearing a terminal).
 */
export function peerText(t: string): string {
  // eslint-disable-next-line no-control-regex
  return t.replace(/[\t\n\r]/g, ' ').replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

function text(v: unknown, max = 1000): string {
  return typeof v === 'string' ? peerText(v.slice(0, max)) : '';
}

export function encodeHello(h: Hello): Buffer {
  return encodeFrame(FRAME.HELLO, Buffer.from(HELLO_LINE + JSON.stringify(h), 'utf8'));
}

export function decodeHello(payload: Buffer): R<Hello> {
  const nl = payload.indexOf(0x0a);
  const line = payload.subarray(0, nl < 0 ? Math.min(payload.length, 64) : nl).toString('latin1');
  const m = /^mailbag-session (\d{1,9})$/.exec(line);
  if (!m) return bad(`HELLO does not start with "${SESSION_MAGIC} ${SESSION_VERSION}": ${JSON.stringify(line.slice(0, 64))}`);
  if (Number(m[1]) !== SESSION_VERSION) {
    return bad(`unsupported session version ${m[1]} (this mailbag speaks ${SESSION_VERSION})`);
  }
  const o = parseObject('HELLO', payload.subarray(nl + 1));
  if (!o.ok) return o;
  const v = o.value;
  if (!isName(v.site)) return bad('HELLO: site is not a site name');
  if (!isName(v.peer)) return bad('HELLO: peer is not a site name');
  if (!Array.isArray(v.codecs) || v.codecs.length > 16) return bad('HELLO: codecs is not a list');
  const codecs = v.codecs.filter((c): c is BagCodec => (CODECS as readonly unknown[]).includes(c));
  for (const k of ['maxBag', 'maxExpanded', 'maxJobs', 'maxJob', 'keepalive'] as const) {
    if (!isCount(v[k])) return bad(`HELLO: ${k} is not a non-negative integer`);
  }
  // a mailbag's caps are each at least 1 (its configuration's floors); caps of 0 would
  // have every job queued for this peer refused for good and its sender told
  for (const k of ['maxBag', 'maxExpanded', 'maxJobs', 'maxJob'] as const) {
    if (v[k] === 0) return bad(`HELLO: ${k} is 0, which no job can meet (a peer that takes nothing is misconfigured; the jobs stay queued)`);
  }
  return {
    ok: true,
    value: {
      site: v.site,
      peer: v.peer,
      codecs,
      maxBag: v.maxBag as number,
      maxExpanded: v.maxExpanded as number,
      maxJobs: v.maxJobs as number,
      maxJob: v.maxJob as number,
      keepalive: v.keepalive as number,
      software: text(v.software, 200),
      ...(v.progress === true ? { progress: true } : {}),
    },
  };
}

export function encodeOffer(o: Offer): Buffer {
  return encodeJsonFrame(FRAME.OFFER, o);
}

export function decodeOffer(payload: Buffer): R<Offer> {
  const o = parseObject('OFFER', payload);
  if (!o.ok) return o;
  const v = o.value;
  if (!isBagHash(v.bag)) return bad('OFFER: bag is not a SHA-256 in hex');
  if (!isCount(v.size) || v.size === 0) return bad('OFFER: size is not a positive integer');
  if (!isCount(v.jobs) || v.jobs === 0) return bad('OFFER: jobs is not a positive integer');
  if (typeof v.codec !== 'string') return bad('OFFER: codec is not a string');
  // the codec is the peer's words too: an unknown one is quoted in our refusal, printed by sync
  return { ok: true, value: { bag: v.bag, size: v.size, jobs: v.jobs, codec: text(v.codec, 64) as BagCodec } };
}

export function encodeAnswer(a: Answer): Buffer {
  return encodeJsonFrame(FRAME.ANSWER, a);
}

export function decodeAnswer(payload: Buffer): R<Answer> {
  const o = parseObject('ANSWER', payload);
  if (!o.ok) return o;
  const v = o.value;
  if (!isBagHash(v.bag)) return bad('ANSWER: bag is not a SHA-256 in hex');
  if (v.have === true) return { ok: true, value: { bag: v.bag, have: true } };
  if (!isCount(v.from)) return bad('ANSWER: neither have nor from');
  return { ok: true, value: { bag: v.bag, from: v.from } };
}

export function encodeAck(a: Ack): Buffer {
  return encodeJsonFrame(FRAME.ACK, a);
}

export function decodeAck(payload: Buffer): R<Ack> {
  const o = parseObject('ACK', payload);
  if (!o.ok) return o;
  const v = o.value;
  if (!isBagHash(v.bag)) return bad('ACK: bag is not a SHA-256 in hex');
  if (!isCount(v.jobs) || !isCount(v.duplicates)) return bad('ACK: jobs and duplicates must be counts');
  return { ok: true, value: { bag: v.bag, jobs: v.jobs, duplicates: v.duplicates } };
}

export function encodeRefuse(r: Refuse): Buffer {
  return encodeJsonFrame(FRAME.REFUSE, { bag: r.bag, code: r.code, message: r.message.slice(0, 4000), ...(r.job ? { job: r.job } : {}) });
}

export function decodeRefuse(payload: Buffer): R<Refuse> {
  const o = parseObject('REFUSE', payload);
  if (!o.ok) return o;
  const v = o.value;
  if (!isBagHash(v.bag)) return bad('REFUSE: bag is not a SHA-256 in hex');
  const job = typeof v.job === 'string' && /^[0-9a-f]{12}[0-9a-z]{4,52}$/.test(v.job) ? v.job : undefined;
  return { ok: true, value: { bag: v.bag, code: text(v.code, 64) || 'refused', message: text(v.message, 4000), ...(job ? { job } : {}) } };
}

export function encodeError(e: ErrorMessage): Buffer {
  return encodeJsonFrame(FRAME.ERROR, { code: e.code, message: e.message.slice(0, 4000) });
}

export function decodeError(payload: Buffer): ErrorMessage {
  const o = parseObject('ERROR', payload);
  if (!o.ok) return { code: 'protocol', message: 'the peer sent an unreadable ERROR frame' };
  return { code: text(o.value.code, 64) || 'protocol', message: text(o.value.message, 4000) };
}

/**
 * The first of the sender's preferred codecs that the receiver reads; else the receiver's
 * first that is not zstd (which only a side whose binding is there lists), if any.
 */
export function chooseCodec(preferred: readonly string[], theirs: readonly BagCodec[]): BagCodec | undefined {
  for (const c of preferred) if ((theirs as readonly string[]).includes(c)) return c as BagCodec;
  return theirs.find((c) => c !== 'zstd');
}
