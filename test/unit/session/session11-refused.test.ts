// session11: two of session 10's left-alone defects of the receiver, over the in-process pair.
//
// 1. A peer could keep a session busy by offering again, for ever, a bag this side already
//    has: each offer was answered `have` and forgotten (SessionState drops resolved bags), so
//    the next identical offer was a new one. An honest sender offers a bag once a session; a
//    second offer of a bag answered `have` or acknowledged in this session is now ERROR
//    `protocol` naming the bag, and what the session committed before stays committed.
// 2. The partial file of a bag this side refused (a refused entry, a cap at the offer) stayed
//    in bags/in/PEER/ until ledger_retention (days): its sender forgets such a bag, so nobody
//    resumes it. It now goes with the refusal; the partial of a bag cut mid-transfer, not
//    refused, stays and is resumed from its length.

import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeJobHeader, type JobHeader } from '../../../lib/job/header.js';
import { newJobId } from '../../../lib/job/id.js';
import { DATA_CHUNK, FRAME, FrameDecoder, encodeDataHead, type Frame } from '../../../lib/session/frame.js';
import { decodeAnswer, decodeError, decodeRefuse, encodeHello, encodeOffer, type Hello } from '../../../lib/session/messages.js';
import { runSession, type SessionResult } from '../../../lib/session/session.js';
import { createPair } from '../../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, store, tempDir, type Site } from './sites.js';

let hub: Site;
let home: Site;
const cleanups: (() => void)[] = [];
beforeEach(async () => {
  const t = tempDir('s11-refused');
  cleanups.push(t.remove);
  hub = await makeSite(t.dir, 'hub');
  home = await makeSite(t.dir, 'home');
});
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const SMALL_CAPS = { maxBag: 1024 * 1024, maxExpanded: 4 * 1024 * 1024, maxJobs: 50, maxJob: 1024 * 1024 };

function hello(): Hello {
  return { site: 'home', peer: 'hub', codecs: ['gzip'], ...CAPS, keepalive: 500, software: 'evil' };
}

/** a real bag of home's queued jobs for hub, built by home's own store: its bytes and hash */
async function honestBag(sizes: number[], seed: number): Promise<{ hash: string; bytes: Buffer; jobs: string[] }> {
  const jobs = [...(await enqueue(home, 'hub', messages(sizes, seed))).keys()];
  const s = store(home, 'hub');
  await s.open();
  const queued = (await s.queuedJobs(new Set())).filter((j) => jobs.includes(j.id));
  const p = await s.buildBag(queued, 'gzip');
  return { hash: p.bag, bytes: readFileSync(join(home.root, 'bags', 'out', 'hub', `${p.bag}.bag`)), jobs: jobs.sort() };
}

function offer(hash: string, bytes: Buffer, jobs = 1): Buffer {
  return encodeOffer({ bag: hash, size: bytes.length, codec: 'gzip', jobs });
}

function data(hash: string, bytes: Buffer, upTo = bytes.length): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < upTo; off += DATA_CHUNK) {
    const piece = bytes.subarray(off, Math.min(off + DATA_CHUNK, upTo));
    out.push(Buffer.concat([encodeDataHead(hash, off, piece.length), piece]));
  }
  return out;
}

/**
 * hub's honest side against raw frames from `home`; each step is frames to send, then the
 * frame type to wait for (bounded) before the next step. Returns every frame hub sent.
 */
async function script(steps: { send: Buffer[]; until?: (got: Frame[]) => boolean }[], caps = CAPS): Promise<{ got: Frame[]; hub: PromiseSettledResult<SessionResult> }> {
  const [evil, far] = createPair();
  const s = store(hub, 'home', { accept: ['rmail'] });
  await s.open();
  const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['gzip'], caps, keepaliveMs: 500, idleTimeoutMs: 5000, ...(process.env.TRACE ? { trace: (l: string) => process.stderr.write(`${l}\n`) } : {}) });
  run.catch(() => {});
  const got: Frame[] = [];
  const dec = new FrameDecoder();
  let ended = false;
  evil.input.on('data', (c: Buffer) => {
    const r = dec.push(c);
    if (r.ok) got.push(...r.value);
  });
  evil.input.on('end', () => (ended = true));
  evil.input.on('error', () => (ended = true));
  for (const step of steps) {
    for (const b of step.send) evil.output.write(b);
    const until = Date.now() + 8000;
    while (step.until && !step.until(got) && !ended && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  }
  evil.abort(new Error('script done'));
  const [res] = await Promise.allSettled([run]);
  return { got, hub: res };
}

const has = (type: number, n = 1) => (got: Frame[]): boolean => got.filter((f) => f.type === type).length >= n;
const partials = (): string[] => readdirSync(join(hub.root, 'bags', 'in', 'home')).filter((n) => n.endsWith('.part'));

describe('a bag offered again after this side said it has it', () => {
  it('a second offer of a bag acknowledged in this session is ERROR protocol; the committed jobs stay', async () => {
    const b = await honestBag([1500, 2500], 3);
    const { got, hub: res } = await script([
      { send: [encodeHello(hello()), offer(b.hash, b.bytes, 2), ...data(b.hash, b.bytes)], until: has(FRAME.ACK) },
      // the same bag again, and again: an honest sender never does
      { send: [offer(b.hash, b.bytes, 2), offer(b.hash, b.bytes, 2), offer(b.hash, b.bytes, 2)], until: has(FRAME.ERROR) },
    ]);
    const err = got.find((f) => f.type === FRAME.ERROR);
    expect(err, `frames: ${got.map((f) => f.type).join(',')}`).toBeDefined();
    const e = decodeError(err!.payload);
    expect(e.code).toBe('protocol');
    expect(e.message).toContain(b.hash.slice(0, 12));
    expect(e.message).toMatch(/again/);
    expect(res.status).toBe('rejected');
    // the bag committed before the repeat is hub's, once
    expect(ids(hub, 'in', 'home')).toEqual(b.jobs);
  });

  it('a bag answered `have` is answered once: offered again in the same session, ERROR protocol', async () => {
    const b = await honestBag([1800], 4);
    // committed in a first (scripted) session that ends before any repeat
    await script([{ send: [encodeHello(hello()), offer(b.hash, b.bytes), ...data(b.hash, b.bytes)], until: has(FRAME.ACK) }]);
    expect(ids(hub, 'in', 'home')).toEqual(b.jobs);
    const { got } = await script([
      { send: [encodeHello(hello()), offer(b.hash, b.bytes)], until: has(FRAME.ANSWER) },
      { send: Array.from({ length: 50 }, () => offer(b.hash, b.bytes)), until: has(FRAME.ERROR) },
    ]);
    const answers = got.filter((f) => f.type === FRAME.ANSWER).map((f) => decodeAnswer(f.payload));
    // one `have` (the lost acknowledgement an honest sender may meet), not 51
    expect(answers).toEqual([{ ok: true, value: { bag: b.hash, have: true } }]);
    const err = got.find((f) => f.type === FRAME.ERROR);
    expect(err && decodeError(err.payload).code).toBe('protocol');
    expect(ids(hub, 'in', 'home')).toEqual(b.jobs);
  });
});

function job(over: Partial<JobHeader> = {}, payload = Buffer.from('Subject: x\n\nhi\n')): { name: string; bytes: Buffer } {
  const h: JobHeader = {
    id: newJobId(), from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail',
    args: ['a@example.org'], sender: 'e@example.net', recipients: ['a@example.org'], ...over,
  };
  return { name: h.id, bytes: Buffer.concat([encodeJobHeader(h), payload]) };
}

async function bagOf(entries: readonly { name: string; bytes: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, size: e.bytes.length }, e.bytes);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

describe('a refused bag offered again', () => {
  it('in the same session is ERROR protocol, not staged and refused again (it was from its partial, kept)', async () => {
    const bytes = await bagOf([job(), job({ command: 'shell' })]);
    const hash = createHash('sha256').update(bytes).digest('hex');
    const { got } = await script([
      { send: [encodeHello(hello()), offer(hash, bytes, 2), ...data(hash, bytes)], until: has(FRAME.REFUSE) },
      { send: [offer(hash, bytes, 2), ...data(hash, bytes)], until: (g) => has(FRAME.ERROR)(g) || has(FRAME.REFUSE, 2)(g) },
    ]);
    expect(got.filter((f) => f.type === FRAME.REFUSE)).toHaveLength(1);
    const err = got.find((f) => f.type === FRAME.ERROR);
    expect(err && decodeError(err.payload)).toEqual({ code: 'protocol', message: `home offered bag ${hash.slice(0, 12)} again after this side had refused it, in the same session` });
    expect(ids(hub, 'in', 'home')).toEqual([]);
  });
});

describe('a bag over the caps this side announced (req-sec11: a decompression bomb)', () => {
  it('expanding past maxExpanded (every entry under the job cap) ends the session with ERROR protocol; what was committed before stays', async () => {
    const b = await honestBag([1500], 7);
    // 12 entries of 200 kB zeros: 2.4 MB expanded against a maxExpanded of 1 MiB
    const bytes = await bagOf(Array.from({ length: 12 }, () => job({}, Buffer.alloc(200_000))));
    const hash = createHash('sha256').update(bytes).digest('hex');
    const { got, hub: res } = await script(
      [
        { send: [encodeHello(hello()), offer(b.hash, b.bytes), ...data(b.hash, b.bytes)], until: has(FRAME.ACK) },
        { send: [offer(hash, bytes, 12), ...data(hash, bytes)], until: (g) => has(FRAME.ERROR)(g) || has(FRAME.REFUSE)(g) },
      ],
      { ...SMALL_CAPS, maxExpanded: 1024 * 1024 },
    );
    expect(got.filter((f) => f.type === FRAME.REFUSE)).toHaveLength(0);
    const err = got.find((f) => f.type === FRAME.ERROR);
    expect(err, `frames: ${got.map((f) => f.type).join(',')}`).toBeDefined();
    const e = decodeError(err!.payload);
    expect(e.code).toBe('protocol');
    expect(e.message).toContain(hash.slice(0, 12));
    expect(e.message).toMatch(/expands to more than the cap of 1048576 bytes/);
    expect(e.message).toMatch(/announced/);
    expect(res.status).toBe('rejected');
    expect(ids(hub, 'in', 'home')).toEqual(b.jobs);
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home'))).toEqual([]);
  });

  it('more entries than maxJobs, or an entry over maxJob: ERROR protocol too', async () => {
    for (const [entries, what] of [[Array.from({ length: 51 }, () => job()), /more than the cap of 50 entries/], [[job({}, Buffer.alloc(2_400_000))], /over the cap of/]] as const) {
      const bytes = await bagOf(entries);
      const hash = createHash('sha256').update(bytes).digest('hex');
      const { got } = await script([{ send: [encodeHello(hello()), offer(hash, bytes, 1), ...data(hash, bytes)], until: (g) => has(FRAME.ERROR)(g) || has(FRAME.REFUSE)(g) }], { ...SMALL_CAPS, maxExpanded: 64 * 1024 * 1024 });
      const err = got.find((f) => f.type === FRAME.ERROR);
      expect(err && decodeError(err.payload), `frames: ${got.map((f) => f.type).join(',')}`).toMatchObject({ code: 'protocol', message: expect.stringMatching(what) });
      expect(partials()).toEqual([]);
    }
  });
});

describe('the partial file of a refused bag', () => {
  it('a bag refused for an entry (forbidden command) leaves no HASH.part', async () => {
    const bytes = await bagOf([job(), job({ command: 'shell' })]);
    const hash = createHash('sha256').update(bytes).digest('hex');
    const { got } = await script([{ send: [encodeHello(hello()), offer(hash, bytes, 2), ...data(hash, bytes)], until: has(FRAME.REFUSE) }]);
    const r = got.find((f) => f.type === FRAME.REFUSE);
    expect(r && decodeRefuse(r.payload).ok && (decodeRefuse(r.payload) as { value: { code: string } }).value.code).toBe('forbidden-command');
    expect(partials()).toEqual([]);
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home'))).toEqual([]);
  });

  it('a bag cut mid-transfer keeps its partial (resumed from its length); refused at the offer once over the cap, the partial goes', async () => {
    const b = await honestBag([300_000, 200_000], 5);
    const bytes = b.bytes;
    expect(bytes.length).toBeGreaterThan(2 * DATA_CHUNK);
    // half of the bag, then the link goes: not refused, so kept
    await script([{ send: [encodeHello(hello()), offer(b.hash, bytes, 2), ...data(b.hash, bytes, 2 * DATA_CHUNK)], until: () => statSafe(join(hub.root, 'bags', 'in', 'home', `${b.hash}.part`)) >= 2 * DATA_CHUNK }]);
    expect(partials()).toEqual([`${b.hash}.part`]);
    // offered again: resumed from the byte it has
    const again = await script([{ send: [encodeHello(hello()), offer(b.hash, bytes, 2)], until: has(FRAME.ANSWER) }]);
    const a = again.got.find((f) => f.type === FRAME.ANSWER);
    expect(a && decodeAnswer(a.payload)).toEqual({ ok: true, value: { bag: b.hash, from: 2 * DATA_CHUNK } });
    expect(partials()).toEqual([`${b.hash}.part`]);
    // hub's cap lowered below the bag's size since: refused too-big at the offer, for good
    // (a bag of one job then fails, of several is rebuilt smaller): nobody resumes it
    const small = await script([{ send: [encodeHello(hello()), offer(b.hash, bytes, 2)], until: has(FRAME.REFUSE) }], { ...SMALL_CAPS, maxBag: 2 * DATA_CHUNK });
    const r = small.got.find((f) => f.type === FRAME.REFUSE);
    expect(r && (decodeRefuse(r.payload) as { value: { code: string } }).value.code).toBe('too-big');
    expect(partials()).toEqual([]);
  });
});

describe('the partial file of a bag not refused', () => {
  it('stays while recent, and goes at a session start once not written to for ledger_retention (its sender discarded the bag)', async () => {
    const b = await honestBag([300_000], 6);
    await script([{ send: [encodeHello(hello()), offer(b.hash, b.bytes), ...data(b.hash, b.bytes, DATA_CHUNK)], until: () => statSafe(join(hub.root, 'bags', 'in', 'home', `${b.hash}.part`)) >= DATA_CHUNK }]);
    expect(partials()).toEqual([`${b.hash}.part`]);
    await store(hub, 'home').open();
    expect(partials()).toEqual([`${b.hash}.part`]);
    const old = new Date(Date.now() - 15 * 86400_000);
    utimesSync(join(hub.root, 'bags', 'in', 'home', `${b.hash}.part`), old, old);
    await store(hub, 'home').open();
    expect(partials()).toEqual([]);
  });
});

describe('a symbolic link where a partial file goes (req-sec11, defence in depth)', () => {
  it('is not followed: removed, the bag asked for from byte 0 and committed, the file it named untouched', async () => {
    const b = await honestBag([2500, 4000], 9);
    const target = join(hub.root, '..', 'precious');
    writeFileSync(target, 'precious bytes\n');
    await store(hub, 'home').open();
    symlinkSync(target, join(hub.root, 'bags', 'in', 'home', `${b.hash}.part`));
    const { got } = await script([
      { send: [encodeHello(hello()), offer(b.hash, b.bytes, 2)], until: has(FRAME.ANSWER) },
      { send: data(b.hash, b.bytes), until: (g) => has(FRAME.ACK)(g) || has(FRAME.REFUSE)(g) },
    ]);
    const a = got.find((f) => f.type === FRAME.ANSWER);
    expect(a && decodeAnswer(a.payload)).toEqual({ ok: true, value: { bag: b.hash, from: 0 } });
    expect(got.some((f) => f.type === FRAME.ACK), `frames: ${got.map((f) => f.type).join(',')}`).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('precious bytes\n');
    expect(ids(hub, 'in', 'home')).toEqual(b.jobs);
    expect(() => lstatSync(join(hub.root, 'bags', 'in', 'home', `${b.hash}.part`))).toThrow();
  });
});

function statSafe(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}
