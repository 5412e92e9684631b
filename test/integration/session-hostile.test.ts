// A hostile peer speaking raw frames to an honest site: another peer's name, entries
// with `../` or links, a decompression bomb, an oversized job, a wrong hash, a forbidden
// command, frames over the caps. Each is refused with a clear error; nothing is written
// outside the spool; the honest jobs already received are unharmed and a later honest
// session still works.

import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { constants, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeJobHeader, type JobHeader } from '../../lib/job/header.js';
import { newJobId } from '../../lib/job/id.js';
import { DATA_CHUNK, FRAME, FrameDecoder, encodeDataHead, encodeFrame, type Frame } from '../../lib/session/frame.js';
import { decodeError, decodeRefuse, encodeHello, encodeOffer, type Hello } from '../../lib/session/messages.js';
import { runSession, type SessionResult } from '../../lib/session/session.js';
import { createPair } from '../../lib/transport/pair.js';
import type { Link } from '../../lib/transport/types.js';
import { CAPS, enqueue, ids, makeSite, messages, session, store, tempDir, type Site } from '../unit/session/sites.js';

let dir: string;
let hub: Site;
let home: Site;
let honest: string[];
const cleanups: (() => void)[] = [];

beforeEach(async () => {
  const t = tempDir('hostile');
  cleanups.push(t.remove);
  dir = t.dir;
  hub = await makeSite(dir, 'hub');
  home = await makeSite(dir, 'home');
  // an honest session first: these jobs must survive everything below
  honest = [...(await enqueue(home, 'hub', messages([1200, 3400], 9))).keys()].sort();
  const [a, b] = createPair();
  await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
  expect(ids(hub, 'in', 'home')).toEqual(honest);
});
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const SMALL_CAPS = { maxBag: 1024 * 1024, maxExpanded: 1024 * 1024, maxJobs: 50, maxJob: 256 * 1024 };

/** The hub's honest side of a session with whoever is on `link`, claiming to be home. */
function hubSide(link: Link): Promise<SessionResult> {
  const s = store(hub, 'home', { accept: ['rmail', 'rsmtp'] });
  return s.open().then(() => runSession({ link, store: s, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: SMALL_CAPS, keepaliveMs: 500, idleTimeoutMs: 5000 }));
}

function hello(site = 'home', peer = 'hub'): Hello {
  return { site, peer, codecs: ['gzip'], maxBag: CAPS.maxBag, maxExpanded: CAPS.maxExpanded, maxJobs: CAPS.maxJobs, maxJob: CAPS.maxJob, keepalive: 500, software: 'evil' };
}

/**
 * Send frames, collect what comes back until the far side closes or sends REFUSE/ERROR/ACK.
 * A function among the frames is awaited there (a pause, a look at the spool).
 */
async function hostile(frames: (Buffer | (() => Promise<void>))[], stopOn: number[] = [FRAME.REFUSE, FRAME.ERROR, FRAME.ACK]): Promise<{ got: Frame[]; hub: PromiseSettledResult<SessionResult> }> {
  const [evil, far] = createPair();
  const hubRun = hubSide(far);
  const got: Frame[] = [];
  const dec = new FrameDecoder();
  const sent = (async (): Promise<void> => {
    for (const f of frames) {
      if (typeof f === 'function') await f();
      else evil.output.write(f);
    }
  })();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 8000);
    evil.input.on('data', (c: Buffer) => {
      const r = dec.push(c);
      if (!r.ok) return;
      got.push(...r.value);
      if (r.value.some((f) => stopOn.includes(f.type))) {
        clearTimeout(timer);
        resolve();
      }
    });
    evil.input.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
    evil.input.on('error', () => resolve());
  });
  await sent;
  evil.abort(new Error('hostile test done'));
  const [res] = await Promise.allSettled([hubRun]);
  return { got, hub: res };
}

function job(over: Partial<JobHeader> = {}, payload = Buffer.from('From x\nSubject: evil\n\nhi\n')): { name: string; bytes: Buffer } {
  const h: JobHeader = {
    id: newJobId(), from: 'home', to: 'hub', created: new Date().toISOString(), command: 'rmail',
    args: ['a@example.org'], sender: 'e@example.net', recipients: ['a@example.org'], ...over,
  };
  return { name: h.id, bytes: Buffer.concat([encodeJobHeader(h), payload]) };
}

async function tarOf(entries: { name: string; bytes?: Buffer; type?: 'file' | 'symlink' | 'directory'; linkname?: string; size?: number }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname ?? '/etc/passwd' });
    else if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory' });
    else pack.entry({ name: e.name, size: e.bytes!.length }, e.bytes!);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function offerFrames(bag: Buffer, claimedHash?: string, jobs = 1): Buffer[] {
  const hash = claimedHash ?? createHash('sha256').update(bag).digest('hex');
  const out = [encodeHello(hello()), encodeOffer({ bag: hash, size: bag.length, codec: 'gzip', jobs })];
  for (let off = 0; off < bag.length; off += DATA_CHUNK) {
    const piece = bag.subarray(off, off + DATA_CHUNK);
    out.push(Buffer.concat([encodeDataHead(hash, off, piece.length), piece]));
  }
  return out;
}

function refusal(got: Frame[]): { code: string; message: string } {
  const f = got.find((x) => x.type === FRAME.REFUSE || x.type === FRAME.ERROR);
  expect(f, `frames back: ${got.map((g) => g.type).join(',')}`).toBeDefined();
  const r = f!.type === FRAME.REFUSE ? decodeRefuse(f!.payload) : { ok: true as const, value: decodeError(f!.payload) };
  if (!r.ok) throw new Error('unreadable refusal');
  return r.value;
}

/** nothing new in in/home, nothing outside the two spools, no staging or partial left to commit */
function unharmed(): void {
  expect(ids(hub, 'in', 'home')).toEqual(honest);
  expect(readdirSync(dir).sort()).toEqual(['home', 'hub']);
  expect(readdirSync(join(hub.root, 'bags', 'in', 'home')).filter((n) => n.endsWith('.d'))).toEqual([]);
  const everywhere = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? everywhere(join(d, e.name)) : [e.name]));
  expect(everywhere(hub.root).filter((n) => n.includes('evil') || n === 'passwd')).toEqual([]);
}

async function honestStillWorks(): Promise<void> {
  const more = [...(await enqueue(home, 'hub', messages([900], 10))).keys()];
  const [a, b] = createPair();
  await Promise.all([session(home, 'hub', a), session(hub, 'home', b)]);
  expect(ids(hub, 'in', 'home')).toEqual([...honest, ...more].sort());
}

describe('a hostile peer', () => {
  it('claiming another peer name is refused before anything is read or written', async () => {
    const { got, hub: res } = await hostile([encodeHello(hello('office'))]);
    const r = refusal(got);
    expect(r.code).toBe('peer-refused');
    expect(r.message).toMatch(/for peer home, not office/);
    expect(res.status).toBe('rejected');
    unharmed();
    await honestStillWorks();
  });

  it('an entry named ../evil is refused, nothing written outside the spool', async () => {
    const j = job();
    const bag = gzipSync(await tarOf([{ name: '../evil', bytes: j.bytes }]));
    const r = refusal((await hostile(offerFrames(bag))).got);
    expect(r.code).toBe('bad-bag');
    expect(r.message).toMatch(/evil/);
    unharmed();
    await honestStillWorks();
  });

  it('a symlink entry is refused', async () => {
    const bag = gzipSync(await tarOf([{ name: 'evil', type: 'symlink', linkname: '/etc/passwd' }]));
    const r = refusal((await hostile(offerFrames(bag))).got);
    expect(r.code).toBe('bad-bag');
    unharmed();
  });

  it('an oversized entry (8 MB of zeros against a 256 KiB job cap) is refused at its tar header, before it is inflated (the expanded-size cap on its own: test/review11/audit11-session.test.ts)', async () => {
    const j = job({}, Buffer.alloc(8 * 1024 * 1024));
    const bag = gzipSync(await tarOf([{ name: j.name, bytes: j.bytes }]), { level: constants.Z_BEST_COMPRESSION });
    expect(bag.length).toBeLessThan(SMALL_CAPS.maxBag);
    const r = refusal((await hostile(offerFrames(bag))).got);
    // past a cap this side announced in HELLO: the session ends (ERROR protocol, session11's 543a339)
    expect(r.code).toBe('protocol');
    expect(r.message).toMatch(/past the caps this side announced/);
    unharmed();
    await honestStillWorks();
  });

  it('a bag over the size cap is refused at the offer, before any data', async () => {
    const { got } = await hostile([encodeHello(hello()), encodeOffer({ bag: 'a'.repeat(64), size: 50 * 1024 * 1024, codec: 'gzip', jobs: 1 })]);
    const r = refusal(got);
    expect(r.code).toBe('too-big');
    unharmed();
  });

  it('a wrong hash is refused and the partial deleted', async () => {
    const j = job();
    const bag = gzipSync(await tarOf([{ name: j.name, bytes: j.bytes }]));
    const r = refusal((await hostile(offerFrames(bag, 'b'.repeat(64)))).got);
    expect(r.code).toBe('bad-hash');
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home'))).toEqual([]);
    unharmed();
  });

  it('a bag staged while it arrives: its good jobs staged first are not committed when a later entry is refused', async () => {
    // incompressible jobs: a bag of several DATA frames; the forbidden one comes last
    const good = Array.from({ length: 12 }, () => job({}, randomBytes(20_000)));
    const bad = job({ command: 'sh' });
    const bag = gzipSync(await tarOf([...good, bad].map((j) => ({ name: j.name, bytes: j.bytes }))));
    const frames = offerFrames(bag, undefined, 13);
    const stagingDir = join(hub.root, 'bags', 'in', 'home');
    let stagedEarly = 0;
    const { got } = await hostile([
      ...frames.slice(0, 4),
      async () => {
        // the first frames are in: the stager has written jobs into HASH.d/ already
        for (let i = 0; i < 50 && stagedEarly === 0; i++) {
          await new Promise((r) => setTimeout(r, 20));
          const d = readdirSync(stagingDir).find((n) => n.endsWith('.d'));
          stagedEarly = d ? readdirSync(join(stagingDir, d)).length : 0;
        }
      },
      ...frames.slice(4),
    ]);
    expect(frames.length).toBeGreaterThan(4);
    expect(stagedEarly).toBeGreaterThan(0);
    const r = refusal(got);
    expect(r.code).toBe('forbidden-command');
    expect(r.message).toContain(bad.name);
    unharmed();
    await honestStillWorks();
  });

  it('a link cut while a bag is staged mid-arrival: the session ends at once, HASH.d/ is removed, the partial stays for a resume', async () => {
    const good = Array.from({ length: 12 }, () => job({}, randomBytes(20_000)));
    const bag = gzipSync(await tarOf(good.map((j) => ({ name: j.name, bytes: j.bytes }))));
    const frames = offerFrames(bag, undefined, 12);
    expect(frames.length).toBeGreaterThan(4);
    const stagingDir = join(hub.root, 'bags', 'in', 'home');
    const [evil, far] = createPair();
    const hubRun = hubSide(far);
    hubRun.catch(() => {});
    for (const f of frames.slice(0, 4)) evil.output.write(f);
    // the stager has written jobs into HASH.d/ and waits for the bytes still to come
    let stagedEarly = 0;
    for (let i = 0; i < 100 && stagedEarly === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const d = readdirSync(stagingDir).find((n) => n.endsWith('.d'));
      stagedEarly = d ? readdirSync(join(stagingDir, d)).length : 0;
    }
    expect(stagedEarly).toBeGreaterThan(0);
    evil.abort(new Error('cable pulled'));
    // the idle timeout is 5 s: an end within 3 s is the link's end, not a timeout
    const end = await Promise.race([hubRun.then(() => 'resolved', () => 'rejected'), new Promise((r) => setTimeout(() => r('hung'), 3000))]);
    expect(end).toBe('rejected');
    const left = readdirSync(stagingDir);
    expect(left.filter((n) => n.endsWith('.d'))).toEqual([]);
    expect(left.filter((n) => n.endsWith('.part'))).toHaveLength(1);
    unharmed();
    await honestStillWorks();
  });

  it('a bag offered again in the same session after its refusal is ERROR protocol (an honest sender offers a bag once a session); nothing is committed, nothing hangs', async () => {
    const bad = job({ command: 'sh' });
    const bag = gzipSync(await tarOf([...Array.from({ length: 6 }, () => job({}, randomBytes(20_000))), bad].map((j) => ({ name: j.name, bytes: j.bytes }))));
    const frames = offerFrames(bag, undefined, 7);
    const hash = createHash('sha256').update(bag).digest('hex');
    const [evil, far] = createPair();
    const hubRun = hubSide(far);
    hubRun.catch(() => {});
    const got: Frame[] = [];
    const dec = new FrameDecoder();
    const refusals = (): number => got.filter((f) => f.type === FRAME.REFUSE).length;
    evil.input.on('data', (c: Buffer) => {
      const r = dec.push(c);
      if (r.ok) got.push(...r.value);
    });
    const until = async (cond: () => boolean): Promise<void> => {
      for (let i = 0; i < 250 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
    };
    for (const f of frames) evil.output.write(f);
    await until(() => refusals() === 1);
    expect(refusals()).toBe(1);
    // the same bag again: refused already in this session (its partial went with the
    // refusal), so the offer ends the session (session11)
    evil.output.write(encodeOffer({ bag: hash, size: bag.length, codec: 'gzip', jobs: 7 }));
    await until(() => got.some((f) => f.type === FRAME.ERROR));
    expect(refusals()).toBe(1);
    const error = got.find((f) => f.type === FRAME.ERROR);
    expect(error && decodeError(error.payload)).toEqual({ code: 'protocol', message: `home offered bag ${hash.slice(0, 12)} again after this side had refused it, in the same session` });
    expect(got.filter((f) => f.type === FRAME.ANSWER)).toHaveLength(1);
    evil.abort(new Error('hostile test done'));
    await hubRun.catch(() => undefined);
    unharmed();
    await honestStillWorks();
  });

  it('a bag with a refused first entry and a wrong hash is refused as bad-hash (the hash decides first)', async () => {
    const bad = job({ from: 'office' });
    const bag = gzipSync(await tarOf([{ name: bad.name, bytes: bad.bytes }, ...Array.from({ length: 6 }, () => job({}, randomBytes(20_000))).map((j) => ({ name: j.name, bytes: j.bytes }))]));
    const r = refusal((await hostile(offerFrames(bag, 'c'.repeat(64), 7))).got);
    expect(r.code).toBe('bad-hash');
    expect(readdirSync(join(hub.root, 'bags', 'in', 'home'))).toEqual([]);
    unharmed();
  });

  it('the partial of a refused bag, which its sender forgets, does not stay in bags/in/: it goes with the refusal', async () => {
    const bad = job({ command: 'sh' });
    const bag = gzipSync(await tarOf([...Array.from({ length: 4 }, () => job({}, randomBytes(20_000))), bad].map((j) => ({ name: j.name, bytes: j.bytes }))));
    const r = refusal((await hostile(offerFrames(bag, undefined, 5))).got);
    expect(r.code).toBe('forbidden-command');
    const dir = join(hub.root, 'bags', 'in', 'home');
    // the sender moves the job to failed/ and forgets the bag: nobody would resume it
    // (a partial not refused and not written to for ledger_retention goes at a session
    // start: test/unit/session/session11-refused.test.ts)
    expect(readdirSync(dir)).toEqual([]);
    await honestStillWorks();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a forbidden command, a forged origin and a job for another site are refused', async () => {
    for (const [over, code] of [[{ command: 'sh' }, 'forbidden-command'], [{ from: 'office' }, 'bad-job'], [{ to: 'elsewhere' }, 'bad-job']] as const) {
      const j = job(over);
      const bag = gzipSync(await tarOf([{ name: j.name, bytes: j.bytes }]));
      const r = refusal((await hostile(offerFrames(bag))).got);
      expect(r.code).toBe(code);
    }
    unharmed();
    await honestStillWorks();
  });

  it('a frame over its cap ends the session with a protocol error, unread', async () => {
    const head = Buffer.alloc(5);
    head.writeUInt8(FRAME.OFFER, 0);
    head.writeUInt32BE(10 * 1024 * 1024, 1);
    const { got } = await hostile([encodeHello(hello()), head]);
    const r = refusal(got);
    expect(r.code).toBe('protocol');
    expect(r.message).toMatch(/too big/);
    unharmed();
  });

  it('garbage instead of a HELLO is reported as text', async () => {
    const { got } = await hostile([Buffer.from('bash: mailbag: command not found\n')]);
    const r = refusal(got);
    expect(r.code).toBe('protocol');
    expect(r.message).toMatch(/did not speak mailbag.*command not found/);
  });

  it('DATA at the wrong offset and frames out of order are protocol errors', async () => {
    const j = job();
    const bag = gzipSync(await tarOf([{ name: j.name, bytes: j.bytes }]));
    const hash = createHash('sha256').update(bag).digest('hex');
    const { got } = await hostile([encodeHello(hello()), encodeOffer({ bag: hash, size: bag.length, codec: 'gzip', jobs: 1 }), Buffer.concat([encodeDataHead(hash, 7, 10), bag.subarray(0, 10)])]);
    expect(refusal(got).code).toBe('protocol');
    const second = await hostile([encodeHello(hello()), encodeFrame(FRAME.BYE)]);
    expect(refusal(second.got).message).toMatch(/BYE before DONE/);
    unharmed();
  });
});
