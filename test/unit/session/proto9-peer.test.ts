// proto9's hunt (session 9): what a peer that is odd, old or hostile sends, each against a
// real session (runSession over the in-process pair, the spool on disk) and a fake peer
// that writes raw frames: a peer whose keepalive is longer than ours, a peer that reads
// none of our codecs, a REFUSE naming a job of another bag.

import { createHash } from 'node:crypto';
import { existsSync, truncateSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FRAME, FrameDecoder, encodeFrame, type Frame } from '../../../lib/session/frame.js';
import { decodeOffer, decodeRefuse, encodeAnswer, encodeError, encodeHello, encodeOffer, encodeRefuse, type Hello } from '../../../lib/session/messages.js';
import { StderrTail } from '../../../lib/transport/link.js';
import { MAX_OPEN_OFFERS } from '../../../lib/session/state.js';
import { FLOW_WINDOW, MAX_UNREAD_OUTPUT, runSession, type SessionResult } from '../../../lib/session/session.js';
import { createPair } from '../../../lib/transport/pair.js';
import type { Link } from '../../../lib/transport/types.js';
import { CAPS, enqueue, ids, makeSite, messages, session, store, tempDir, type Site } from './sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  vi.useRealTimers();
  while (cleanups.length) cleanups.pop()!();
});

function helloOf(site: string, peer: string, extra: Partial<Hello> = {}): Hello {
  return { site, peer, codecs: ['br', 'gzip', 'none'], ...CAPS, keepalive: 500, software: 'fake', progress: true, ...extra };
}

/** the far end of a pair, read frame by frame */
function fakePeer(link: Link): { frames: Frame[]; next: (type: number, ms?: number) => Promise<Frame>; send: (b: Buffer) => void } {
  const frames: Frame[] = [];
  const waiters: (() => void)[] = [];
  const dec = new FrameDecoder();
  link.input.on('data', (c: Buffer) => {
    const r = dec.push(c);
    if (!r.ok) return;
    frames.push(...r.value);
    for (const w of waiters.splice(0)) w();
  });
  let seen = 0;
  return {
    frames,
    send: (b) => void link.output.write(b),
    async next(type, ms = 5000) {
      const until = Date.now() + ms;
      for (;;) {
        const i = frames.findIndex((f, k) => k >= seen && f.type === type);
        if (i >= 0) {
          seen = i + 1;
          return frames[i]!;
        }
        if (Date.now() > until) throw new Error(`no frame 0x${type.toString(16)} within ${ms} ms (last frames ${frames.slice(-20).map((f) => f.type).join(',')} of ${frames.length})`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
  };
}

async function site(label: string, name: string): Promise<Site> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  return makeSite(t.dir, name);
}

describe('a peer whose keepalive is longer than ours', () => {
  it('is not timed out while it stays within four of its own keepalive intervals', async () => {
    const hub = await site('p9-keepalive', 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair();
    // hub gives up after 1 s of silence by its own settings; home says it pings every 1.5 s
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000 });
    run.catch(() => {});
    const home = fakePeer(near);
    home.send(encodeHello(helloOf('home', 'hub', { keepalive: 1500 })));
    home.send(encodeFrame(FRAME.DONE));
    await home.next(FRAME.DONE);
    await home.next(FRAME.BYE);
    // home is busy (committing what it received, say) and silent but for its keepalive
    await new Promise((r) => setTimeout(r, 1500));
    home.send(encodeFrame(FRAME.PING));
    await new Promise((r) => setTimeout(r, 1000));
    home.send(encodeFrame(FRAME.BYE));
    near.output.end();
    const r: SessionResult = await run;
    expect(r.drained).toBe(true);
  });
});

describe('fixes10b: a peer whose HELLO asks for a very long keepalive', () => {
  it('is believed only up to the cap: silent for four capped intervals, it is taken for dead (not after 4 × 24 days)', async () => {
    const hub = await site('f10b-keepalive', 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair();
    // the cap shortened from its 10 min to 300 ms: silence past 4 × 300 ms ends the session
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000, maxPeerKeepaliveMs: 300 });
    run.catch(() => {});
    const home = fakePeer(near);
    // 24 days, the most our own configuration takes: believed, it made the idle limit 96 days
    home.send(encodeHello(helloOf('home', 'hub', { keepalive: 24 * 86_400_000 })));
    const outcome = await Promise.race([
      run.then(() => 'ended' as const, (e: Error) => e),
      new Promise<'still open'>((r) => setTimeout(() => r('still open'), 8000)),
    ]);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toMatch(/nothing received from home for \d+ s: the link is dead/);
    expect((outcome as { code?: string }).code).toBe('timeout');
  });

  it('a keepalive within the cap still counts: not timed out within four of its intervals', async () => {
    const hub = await site('f10b-keepalive2', 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000, maxPeerKeepaliveMs: 600 });
    run.catch(() => {});
    const home = fakePeer(near);
    home.send(encodeHello(helloOf('home', 'hub', { keepalive: 24 * 86_400_000 })));
    home.send(encodeFrame(FRAME.DONE));
    await home.next(FRAME.DONE);
    await home.next(FRAME.BYE);
    // 1.6 s of silence: past our own 1 s, within 4 × the capped 600 ms
    await new Promise((r) => setTimeout(r, 1600));
    home.send(encodeFrame(FRAME.BYE));
    near.output.end();
    const r: SessionResult = await run;
    expect(r.drained).toBe(true);
  });
});

describe('a peer that reads none of the codecs this side writes', () => {
  it('leaves the jobs queued and says so: the session is not drained', async () => {
    const home = await site('p9-codec', 'home');
    const queued = await enqueue(home, 'hub', messages([400, 500], 91));
    const s = store(home, 'hub');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'home', peer: 'hub', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, scanEarly: true });
    run.catch(() => {});
    const hub = fakePeer(near);
    hub.send(encodeHello(helloOf('hub', 'home', { codecs: [] })));
    hub.send(encodeFrame(FRAME.DONE));
    await hub.next(FRAME.DONE);
    await hub.next(FRAME.BYE);
    hub.send(encodeFrame(FRAME.BYE));
    near.output.end();
    const r = await run;
    expect(ids(home, 'out', 'hub')).toEqual([...queued.keys()].sort());
    expect(r.sent.jobs).toBe(0);
    expect(r.drained).toBe(false);
    expect(r.unsent).toBe(2);
  });
});

describe('a REFUSE that names a job of another bag', () => {
  it('fails no job that is not in the refused bag', async () => {
    const home = await site('p9-refuse', 'home');
    // two bags: the small jobs, and one of 1 MiB or more alone in its own
    const small = await enqueue(home, 'hub', messages([300], 92));
    const large = await enqueue(home, 'hub', messages([1200 * 1024], 93));
    const s = store(home, 'hub');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'home', peer: 'hub', codecs: ['gzip'], caps: CAPS, keepaliveMs: 500, idleTimeoutMs: 3000, scanEarly: true });
    run.catch(() => {});
    const hub = fakePeer(near);
    hub.send(encodeHello(helloOf('hub', 'home')));
    const first = decodeOffer((await hub.next(FRAME.OFFER)).payload);
    const second = decodeOffer((await hub.next(FRAME.OFFER)).payload);
    expect(first.ok && second.ok && first.value.jobs === 1 && second.value.jobs === 1).toBe(true);
    if (!first.ok || !second.ok) return;
    // the small bag refused "for" the large bag's job
    const largeId = [...large.keys()][0]!;
    hub.send(encodeRefuse({ bag: first.value.bag, code: 'bad-job', message: 'not yours', job: largeId }));
    hub.send(encodeRefuse({ bag: second.value.bag, code: 'bad-hash', message: 'damaged' }));
    hub.send(encodeFrame(FRAME.DONE));
    await hub.next(FRAME.BYE);
    hub.send(encodeFrame(FRAME.BYE));
    near.output.end();
    await run;
    // the large job was never refused: it stays queued, and no bounce is owed for it
    expect(ids(home, 'failed', 'hub')).not.toContain(largeId);
    expect(ids(home, 'out', 'hub')).toEqual([...small.keys(), largeId].sort());
  });
});

describe('the clock stepped forward during a session (NTP at boot)', () => {
  it('is no silence: a live peer is not timed out', async () => {
    const hub = await site('p9-clockstep', 'hub');
    const s = store(hub, 'home');
    await s.open();
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000 });
    run.catch(() => {});
    const home = fakePeer(near);
    home.send(encodeHello(helloOf('home', 'hub', { keepalive: 200 })));
    home.send(encodeFrame(FRAME.DONE));
    await home.next(FRAME.BYE);
    // NTP steps the clock an hour forward; home goes on pinging as it should
    vi.setSystemTime(Date.now() + 3_600_000);
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 150));
      home.send(encodeFrame(FRAME.PING));
    }
    home.send(encodeFrame(FRAME.BYE));
    near.output.end();
    const r = await run;
    expect(r.drained).toBe(true);
  });
});

describe('a pending bag whose file is shorter than its offer (truncated on disk)', () => {
  it('ends the session with an error and drops the bag (rebuilt from its jobs), instead of leaving the peer waiting for bytes for ever', async () => {
    const home = await site('p9-short-bag', 'home');
    const queued = await enqueue(home, 'hub', messages([3000, 4000], 96));
    const s = store(home, 'hub');
    await s.open();
    const [near, far] = createPair();
    // keepalives both ways keep the link alive: only the sender can notice
    const run = runSession({ link: far, store: s, site: 'home', peer: 'hub', codecs: ['gzip'], caps: CAPS, keepaliveMs: 200, scanEarly: true });
    run.catch(() => {});
    const hub = fakePeer(near);
    hub.send(encodeHello(helloOf('hub', 'home', { progress: false })));
    const offer = decodeOffer((await hub.next(FRAME.OFFER)).payload);
    if (!offer.ok) throw new Error('no offer');
    const file = home.spool.path('bags', 'out', 'hub', `${offer.value.bag}.bag`);
    truncateSync(file, Math.floor(offer.value.size / 2));
    hub.send(encodeAnswer({ bag: offer.value.bag, from: 0 }));
    const pinger = setInterval(() => hub.send(encodeFrame(FRAME.PING)), 200);
    try {
      const outcome = await Promise.race([
        run.then(() => 'settled', (e: Error) => `failed: ${e.message}`),
        new Promise<string>((r) => setTimeout(() => r('still waiting after 4 s'), 4000)),
      ]);
      expect(outcome).toMatch(/^failed: .*shorter/);
    } finally {
      clearInterval(pinger);
      near.output.end();
    }
    await run.catch(() => undefined);
    expect(existsSync(file)).toBe(false);
    expect(ids(home, 'out', 'hub')).toEqual([...queued.keys()].sort());
  });
});

describe('offers without end', () => {
  it('a peer keeping more than MAX_OPEN_OFFERS bags offered and unresolved has the ones past it refused for now (busy), nothing kept of them (bounded memory)', async () => {
    const hub = await site('p9-offers', 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair({ highWaterMark: 1024 * 1024 });
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 1000 });
    run.catch(() => {});
    const home = fakePeer(near);
    home.send(encodeHello(helloOf('home', 'hub')));
    const frames: Buffer[] = [];
    const bagOf = (i: number): string => createHash('sha256').update(`bag ${i}`).digest('hex');
    for (let i = 0; i < MAX_OPEN_OFFERS + 3; i++) frames.push(encodeOffer({ bag: bagOf(i), size: 1000, codec: 'br', jobs: 1 }));
    home.send(Buffer.concat(frames));
    const refused: string[] = [];
    for (let k = 0; k < 3; k++) {
      const r = decodeRefuse((await home.next(FRAME.REFUSE, 30_000)).payload);
      if (!r.ok) throw new Error('REFUSE does not decode');
      expect(r.value).toMatchObject({ code: 'busy', message: expect.stringMatching(/more than 10000 bags offered/) });
      refused.push(r.value.bag);
    }
    expect(refused).toEqual([0, 1, 2].map((k) => bagOf(MAX_OPEN_OFFERS + k)));
    expect(home.frames.some((f) => f.type === FRAME.ERROR)).toBe(false);
    near.output.end();
    await run.catch(() => undefined);
  }, 60_000);

  it('a sender keeps at most its window of offers unresolved, and everything still crosses', async () => {
    const t = tempDir('p9-window');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    // each of 1 MiB or more goes alone in its bag: five bags
    const up = await enqueue(home, 'hub', messages([1100, 1200, 1300, 1400, 1500].map((k) => k * 1024), 97));
    const lines: string[] = [];
    const [a, b] = createPair();
    const trace = (l: string): void => void lines.push(l);
    await Promise.all([session(home, 'hub', a, { offerWindow: 2, trace }), session(hub, 'home', b)]);
    expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
    let open = 0;
    let most = 0;
    for (const l of lines) {
      if (/^home > OFFER /.test(l)) most = Math.max(most, ++open);
      if (/^home < (ACK|REFUSE) /.test(l) || /^home < ANSWER .*"have"/.test(l)) open--;
    }
    expect(most).toBe(2);
  });
});

describe('words from the peer reach the admin as text, not as terminal control', () => {
  it('an ERROR message with escape sequences and a forged second line is printed with them defused', async () => {
    const home = await site('p9-escape', 'home');
    const s = store(home, 'hub');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'home', peer: 'hub', codecs: ['br'], caps: CAPS, keepaliveMs: 500 });
    run.catch(() => {});
    const hub = fakePeer(near);
    hub.send(encodeHello(helloOf('hub', 'home')));
    // a title change, a screen clear, and a line that looks like mailbag's own
    hub.send(encodeError({ code: 'internal', message: 'disk\x1b]0;pwned\x07 full\x1b[2J\n2.0.0 mailbag: all delivered\r' }));
    const err = (await run.catch((e: Error) => e)) as Error;
    near.output.end();
    expect(err.message).toContain('disk');
    expect(err.message).toContain('2.0.0 mailbag: all delivered');
    // eslint-disable-next-line no-control-regex
    expect(err.message).not.toMatch(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/);
  });

  it('the far command\'s stderr tail is kept without control characters', () => {
    const tail = new StderrTail();
    tail.write(Buffer.from('ssh: connect to host hub\x1b[31m refused\x1b[0m\nline two\x07\n'));
    expect(tail.text()).toBe('ssh: connect to host hub?[31m refused?[0m\nline two?');
  });
});

describe('fixes10: a peer that only pings', () => {
  it('cannot hold the session open for ever: it ends with timeout once nothing but PING came for the stall time', async () => {
    const hub = await site('f10-pings', 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair();
    // keepalive and idle as in the test above; the stall time shortened from its hour
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000, stallTimeoutMs: 1500 });
    run.catch(() => {});
    const home = fakePeer(near);
    home.send(encodeHello(helloOf('home', 'hub', { keepalive: 100 })));
    // home never says DONE: it pings, well within every idle limit, for ever
    const pinger = setInterval(() => home.send(encodeFrame(FRAME.PING)), 100);
    cleanups.push(() => clearInterval(pinger));
    const outcome = await Promise.race([
      run.then(() => 'ended' as const, (e: Error) => e),
      new Promise<'still open'>((r) => setTimeout(() => r('still open'), 6000)),
    ]);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toMatch(/home sent nothing but keepalives for \d+ s/);
    expect((outcome as { code?: string }).code).toBe('timeout');
    // the peer was told
    const err = await home.next(FRAME.ERROR, 1000);
    expect(err.payload.toString()).toMatch(/timeout/);
  });

  it('a peer that asks for a bag and never reports PROGRESS (only PING) cannot hold our sender for ever', async () => {
    const home = await site('f10-pings-window', 'home');
    // random bytes: the bag stays larger than the flow-control window once compressed
    const { randomBytes } = await import('node:crypto');
    await enqueue(home, 'hub', [Buffer.concat([Buffer.from('Subject: big\n\n'), Buffer.from(randomBytes(700 * 1024).toString('base64'))])]);
    const s = store(home, 'hub');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'home', peer: 'hub', codecs: ['gzip'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000, stallTimeoutMs: 1500, scanEarly: true });
    run.catch(() => {});
    const hub = fakePeer(near);
    hub.send(encodeHello(helloOf('hub', 'home', { keepalive: 100 })));
    hub.send(encodeFrame(FRAME.DONE));
    const offer = decodeOffer((await hub.next(FRAME.OFFER)).payload);
    if (!offer.ok) throw new Error('bad offer');
    expect(offer.value.size).toBeGreaterThan(FLOW_WINDOW);
    hub.send(encodeAnswer({ bag: offer.value.bag, from: 0 }));
    // the window's DATA arrive; the hub pings and reports nothing
    const pinger = setInterval(() => hub.send(encodeFrame(FRAME.PING)), 100);
    cleanups.push(() => clearInterval(pinger));
    const outcome = await Promise.race([
      run.then(() => 'ended' as const, (e: Error) => e),
      new Promise<'still open'>((r) => setTimeout(() => r('still open'), 6000)),
    ]);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toMatch(/hub sent nothing but keepalives/);
  });

  it('a peer that floods offers answered at once (REFUSE busy past the open-offer cap) and reads none of our answers cannot make us hold them all', async () => {
    const hub = await site('f10-unread', 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1500 });
    run.catch(() => {});
    // the peer writes and never reads: near.input is left alone
    near.output.write(encodeHello(helloOf('home', 'hub', { keepalive: 100 })));
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, far.output.writableLength)), 5);
    cleanups.push(() => clearInterval(sample));
    // MAX_OPEN_OFFERS bags offered and left open (each answered), then many more: each of
    // those answered REFUSE busy at once (kept nowhere, counted; not a refusal of R2's cap)
    const offers: Buffer[] = [];
    for (let i = 0; i < MAX_OPEN_OFFERS + 100_000; i++) offers.push(encodeOffer({ bag: i.toString(16).padStart(64, '0'), size: 1000, codec: 'br', jobs: 1 }));
    near.output.write(Buffer.concat(offers));
    // the session ends (the idle timer, as we stop reading) or stays bounded meanwhile
    const ended = await Promise.race([run.then(() => "ok", (e: Error) => e.message), new Promise((r) => setTimeout(() => r("open"), 8000))]);
    expect(ended).not.toBe('ok');
    clearInterval(sample);
    most = Math.max(most, far.output.writableLength);
    expect(most).toBeLessThan(MAX_UNREAD_OUTPUT + 1024 * 1024);
    expect(most).toBeGreaterThan(MAX_UNREAD_OUTPUT / 2); // the flood did reach the limit
    near.output.destroy();
  });

  it('a peer that moves between its pings is not stalled: the time counts from its last frame other than PING', async () => {
    const hub = await site('f10-pings-moving', 'hub');
    const s = store(hub, 'home');
    await s.open();
    const [near, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['br'], caps: CAPS, keepaliveMs: 200, idleTimeoutMs: 1000, stallTimeoutMs: 1500 });
    run.catch(() => {});
    const home = fakePeer(near);
    home.send(encodeHello(helloOf('home', 'hub', { keepalive: 100 })));
    const pinger = setInterval(() => home.send(encodeFrame(FRAME.PING)), 100);
    cleanups.push(() => clearInterval(pinger));
    // two stretches of pings, each shorter than the stall time, together longer
    await new Promise((r) => setTimeout(r, 1000));
    home.send(encodeFrame(FRAME.DONE));
    await home.next(FRAME.BYE);
    await new Promise((r) => setTimeout(r, 1000));
    clearInterval(pinger);
    home.send(encodeFrame(FRAME.BYE));
    near.output.end();
    const r: SessionResult = await run;
    expect(r.drained).toBe(true);
  });
});
