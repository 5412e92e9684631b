// A session whose store is still opening (serve: its recovery) sends its HELLO at once
// (SessionOptions.opened): nothing in the HELLO depends on the store. Nothing the peer
// sends is handled before the store is open, and a store that fails to open ends the
// session with an ERROR frame after the HELLO, which the peer reports.
import { describe, expect, it } from 'vitest';
import { SpoolError } from '../../../lib/errors.js';
import { runSession } from '../../../lib/session/session.js';
import { PassThrough } from 'node:stream';
import { streamLink } from '../../../lib/transport/link.js';
import { createPair } from '../../../lib/transport/pair.js';
import { CAPS, enqueue, ids, makeSite, messages, session, store, tempDir } from '../session/sites.js';

/** a promise and its resolve/reject, for a store whose open() we let finish when we like */
function held(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("a session's HELLO while its store opens", () => {
  it('goes out before the store is open; the peer waits for the store, then everything crosses', async () => {
    const t = tempDir('hello-early');
    try {
      const home = await makeSite(t.dir, 'home');
      const hub = await makeSite(t.dir, 'hub');
      const up = await enqueue(home, 'hub', messages([700, 1200, 300], 61));
      const [homeLink, hubLink] = createPair();
      const homeTrace: string[] = [];
      const gate = held();
      const hubStore = store(hub, 'home');
      // the hub's store opens only once the gate is let go
      let storeOpen = false;
      const opened = gate.promise.then(() => hubStore.open()).then(() => void (storeOpen = true));
      const hubSide = runSession({ link: hubLink, store: hubStore, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, opened });
      const homeSide = session(home, 'hub', homeLink, { trace: (l) => homeTrace.push(`${storeOpen ? 'open' : 'closed'} ${l}`) });
      // the hub's HELLO reaches home while the hub's store is still closed
      for (let i = 0; i < 200 && !homeTrace.some((l) => l.includes('< HELLO')); i++) await new Promise((r) => setTimeout(r, 10));
      expect(homeTrace.find((l) => l.includes('< HELLO'))).toMatch(/^closed home < HELLO/);
      // home offers; nothing is answered while the store is closed
      for (let i = 0; i < 200 && !homeTrace.some((l) => l.includes('> OFFER')); i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      expect(homeTrace.some((l) => l.includes('< ANSWER'))).toBe(false);
      gate.resolve();
      const [a, b] = await Promise.all([homeSide, hubSide]);
      expect(a.drained && b.drained).toBe(true);
      expect(b.received.jobs).toBe(up.size);
      expect(ids(hub, 'in', 'home')).toEqual([...up.keys()].sort());
      expect(ids(home, 'out', 'hub')).toEqual([]);
      expect(homeTrace.filter((l) => l.includes('< ANSWER')).every((l) => l.startsWith('open '))).toBe(true);
    } finally {
      t.remove();
    }
  });

  it('a store that opens for longer than the idle timeout is no dead link: the session waits for it', async () => {
    const t = tempDir('hello-early-slow');
    try {
      const home = await makeSite(t.dir, 'home');
      const hub = await makeSite(t.dir, 'hub');
      const up = await enqueue(home, 'hub', messages([800], 63));
      const [homeLink, hubLink] = createPair();
      const gate = held();
      const hubStore = store(hub, 'home');
      const opened = gate.promise.then(() => hubStore.open());
      // home's frames (HELLO, OFFER, PINGs) wait unread while the hub's recovery runs 4 idle timeouts
      const hubSide = runSession({ link: hubLink, store: hubStore, site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 50, idleTimeoutMs: 250, opened });
      const homeSide = session(home, 'hub', homeLink, { keepaliveMs: 50, idleTimeoutMs: 250 });
      setTimeout(() => gate.resolve(), 1000);
      const [a, b] = await Promise.all([homeSide, hubSide]);
      expect(a.drained && b.drained).toBe(true);
      expect(ids(hub, 'in', 'home')).toEqual([...up.keys()]);
    } finally {
      t.remove();
    }
  });

  it('after its ERROR for a store that failed, the link ends when the peer closes, not torn down', async () => {
    const t = tempDir('hello-early-end');
    try {
      const home = await makeSite(t.dir, 'home');
      const hub = await makeSite(t.dir, 'hub');
      await enqueue(home, 'hub', messages([500], 64));
      // two stdio-like links (serve's is streamLink over its stdin/stdout): what one side
      // closes, the other reads the end of
      const [homeIn, homeOut, hubIn, hubOut] = [new PassThrough(), new PassThrough(), new PassThrough(), new PassThrough()];
      homeOut.pipe(hubIn);
      hubOut.pipe(homeIn);
      homeOut.on('close', () => hubIn.end());
      const homeLink = streamLink(homeIn, homeOut, 'home');
      const hubLink = streamLink(hubIn, hubOut, 'hub');
      const gate = held();
      const hubSide = runSession({ link: hubLink, store: store(hub, 'home'), site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, opened: gate.promise });
      hubSide.catch(() => {});
      const homeSide = session(home, 'hub', homeLink);
      homeSide.catch(() => {});
      gate.reject(new SpoolError('cannot open the ledger: EACCES'));
      await expect(homeSide).rejects.toMatchObject({ code: 'peer-refused' });
      await expect(hubSide).rejects.toMatchObject({ code: 'spool' });
      // read to its end (the peer closed after our ERROR), not aborted by the 2 s bound
      expect(await hubLink.done).toMatchObject({ ok: true });
    } finally {
      t.remove();
    }
  });

  it('a store that cannot be opened ends the session with ERROR after the HELLO; nothing leaves the peer', async () => {
    const t = tempDir('hello-early-fail');
    try {
      const home = await makeSite(t.dir, 'home');
      const hub = await makeSite(t.dir, 'hub');
      const up = await enqueue(home, 'hub', messages([500], 62));
      const [homeLink, hubLink] = createPair();
      const homeTrace: string[] = [];
      const gate = held();
      const hubSide = runSession({ link: hubLink, store: store(hub, 'home'), site: 'hub', peer: 'home', codecs: ['br', 'gzip'], caps: CAPS, keepaliveMs: 500, opened: gate.promise });
      hubSide.catch(() => {});
      const homeSide = session(home, 'hub', homeLink, { trace: (l) => homeTrace.push(l) });
      homeSide.catch(() => {});
      for (let i = 0; i < 200 && !homeTrace.some((l) => l.includes('< HELLO')); i++) await new Promise((r) => setTimeout(r, 10));
      gate.reject(new SpoolError('cannot open the ledger: EACCES'));
      await expect(hubSide).rejects.toMatchObject({ code: 'spool' });
      await expect(homeSide).rejects.toMatchObject({ code: 'peer-refused', message: expect.stringContaining('cannot open the ledger: EACCES (spool)') });
      const received = homeTrace.filter((l) => / < (HELLO|ERROR|ANSWER|ACK)/.test(l)).map((l) => l.split(' ')[2]);
      expect(received).toEqual(['HELLO', 'ERROR']);
      // the job stays queued at home
      expect(ids(home, 'out', 'hub')).toEqual([...up.keys()]);
    } finally {
      t.remove();
    }
  });
});
