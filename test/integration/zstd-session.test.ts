// zstd in a session (docs/protocol.md, "Codec names"): two current peers send zstd bags;
// a peer whose HELLO does not list zstd (an older mailbag) gets brotli, also for the bags
// built before its HELLO (discarded and built again); a side whose zstd binding cannot be
// loaded neither lists nor chooses zstd, says why in its trace, and everything crosses.
// The HELLO of an older peer is made by rewriting the far side's HELLO frame on its way.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { usableCodecs } from '../../lib/bag/codec.js';
import { setZstdLoaderForTests } from '../../lib/bag/zstd.js';
import { FRAME, FRAME_HEADER, encodeFrame } from '../../lib/session/frame.js';
import { HELLO_LINE, type BagCodec } from '../../lib/session/messages.js';
import { runSession, type SessionResult } from '../../lib/session/session.js';
import { createPair } from '../../lib/transport/pair.js';
import type { Link } from '../../lib/transport/types.js';
import { CAPS, enqueue, ids, makeSite, messages, payloadOf, store, tempDir, type Site } from '../unit/session/sites.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  setZstdLoaderForTests();
  while (cleanups.length) cleanups.pop()!();
});

const ALL: BagCodec[] = ['zstd', 'br', 'gzip', 'none'];

/**
 * Frames written to this link's output pass through `onFrame` (whole frames: a test's
 * bags are small), which may return a replacement payload. Ends the real output when
 * the session ends this one.
 */
class FrameTap extends Transform {
  private buf = Buffer.alloc(0);
  constructor(private readonly onFrame: (type: number, payload: Buffer) => Buffer | undefined) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= FRAME_HEADER) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < FRAME_HEADER + len) break;
      const type = this.buf[0]!;
      const payload = this.buf.subarray(FRAME_HEADER, FRAME_HEADER + len);
      const replaced = this.onFrame(type, payload);
      this.push(replaced ? encodeFrame(type as never, replaced) : this.buf.subarray(0, FRAME_HEADER + len));
      this.buf = this.buf.subarray(FRAME_HEADER + len);
    }
    cb();
  }
}

function tapped(link: Link, onFrame: (type: number, payload: Buffer) => Buffer | undefined): Link {
  const tap = new FrameTap(onFrame);
  tap.pipe(link.output);
  return {
    input: link.input,
    output: tap,
    done: link.done,
    close: async () => {
      if (!tap.writableEnded) tap.end();
      await new Promise<void>((resolve) => (tap.readableEnded ? resolve() : tap.once('end', () => setImmediate(resolve))));
      return link.close();
    },
    abort: (error?: Error) => {
      tap.destroy();
      link.abort(error);
    },
    describe: () => `tapped ${link.describe()}`,
  };
}

/** the codecs of the OFFERs a side sends */
function offersOf(link: Link, codecs: string[]): Link {
  return tapped(link, (type, payload) => {
    if (type === FRAME.OFFER) codecs.push((JSON.parse(payload.toString('utf8')) as { codec: string }).codec);
    return undefined;
  });
}

/** a side whose HELLO lists only these codecs, as an older mailbag's does */
function olderHello(link: Link, codecs: string[]): Link {
  return tapped(link, (type, payload) => {
    if (type !== FRAME.HELLO) return undefined;
    const hello = JSON.parse(payload.subarray(HELLO_LINE.length).toString('utf8')) as { codecs: string[] };
    hello.codecs = codecs;
    return Buffer.from(HELLO_LINE + JSON.stringify(hello), 'utf8');
  });
}

async function world(label: string, n: number): Promise<{ hub: Site; home: Site; sent: Map<string, Buffer> }> {
  const t = tempDir(label);
  cleanups.push(t.remove);
  const hub = await makeSite(t.dir, 'hub');
  const home = await makeSite(t.dir, 'home');
  const sizes = Array.from({ length: n }, (_, i) => 400 + ((i * 7919) % 30000));
  const sent = await enqueue(home, 'hub', messages(sizes, 91));
  return { hub, home, sent };
}

async function run(site: Site, peer: string, link: Link, codecs: BagCodec[], extra: { scanEarly?: boolean; trace?: (l: string) => void } = {}): Promise<SessionResult> {
  const s = store(site, peer);
  await s.open();
  return runSession({ link, store: s, site: site.name, peer, codecs, caps: CAPS, keepaliveMs: 500, ...extra });
}

function arrivedOnce(hub: Site, home: Site, sent: Map<string, Buffer>): void {
  expect(ids(hub, 'in', 'home')).toEqual([...sent.keys()].sort());
  for (const [id, p] of sent) expect(payloadOf(hub, 'in', 'home', id).equals(p)).toBe(true);
  expect(ids(home, 'out', 'hub')).toEqual([]);
  const out = join(home.root, 'bags', 'out', 'hub');
  expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
}

describe('zstd between peers', () => {
  it('two current peers send zstd bags', async () => {
    const { hub, home, sent } = await world('zstd-both', 60);
    const [a, b] = createPair();
    const offered: string[] = [];
    const [rHome, rHub] = await Promise.all([run(home, 'hub', offersOf(a, offered), ALL), run(hub, 'home', b, ALL)]);
    expect(rHub.peerHello.codecs).toEqual(ALL);
    expect(rHome.peerHello.codecs).toEqual(ALL);
    expect(offered.length).toBeGreaterThan(0);
    expect(new Set(offered)).toEqual(new Set(['zstd']));
    expect(rHome.sent.jobs).toBe(sent.size);
    arrivedOnce(hub, home, sent);
  });

  it('a peer listing only br, gzip and none gets br, also instead of the zstd bags built before its HELLO', async () => {
    const { hub, home, sent } = await world('zstd-older', 40);
    const [a, b] = createPair();
    const offered: string[] = [];
    const lines: string[] = [];
    // home builds zstd bags while the hub is silent
    const homeRun = run(home, 'hub', offersOf(a, offered), ALL, { scanEarly: true, trace: (l) => lines.push(l) });
    const out = join(home.root, 'bags', 'out', 'hub');
    const early: string[] = [];
    for (let i = 0; i < 250 && early.length === 0; i++) {
      if (existsSync(out)) early.push(...readdirSync(out).filter((n) => n.endsWith('.jobs')));
      if (early.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(early.length).toBeGreaterThan(0);
    expect(readFileSync(join(out, early[0]!), 'utf8').split('\n')[1]).toBe('codec zstd');
    const [rHome] = await Promise.all([homeRun, run(hub, 'home', olderHello(b, ['br', 'gzip', 'none']), ALL)]);
    expect(rHome.peerHello.codecs).toEqual(['br', 'gzip', 'none']);
    expect(new Set(offered)).toEqual(new Set(['br']));
    expect(lines.some((l) => /discarding/.test(l))).toBe(true);
    expect(rHome.sent.jobs).toBe(sent.size);
    arrivedOnce(hub, home, sent);
  });

  it('without the zstd binding: not listed, not chosen, one trace line says why, and the mail crosses in br', async () => {
    setZstdLoaderForTests(() => {
      throw new Error('simulated: zstd-napi binding.node cannot be opened');
    });
    const usable = usableCodecs();
    expect(usable).toEqual(['br', 'gzip', 'none']);
    const { hub, home, sent } = await world('zstd-missing', 30);
    const [a, b] = createPair();
    const offered: string[] = [];
    const lines: string[] = [];
    const [rHome, rHub] = await Promise.all([
      run(home, 'hub', offersOf(a, offered), usable, { trace: (l) => lines.push(l) }),
      run(hub, 'home', b, usable),
    ]);
    expect(rHub.peerHello.codecs).toEqual(['br', 'gzip', 'none']);
    expect(rHome.peerHello.codecs).toEqual(['br', 'gzip', 'none']);
    expect(lines.filter((l) => /^zstd is not offered: .*simulated/.test(l))).toHaveLength(1);
    expect(new Set(offered)).toEqual(new Set(['br']));
    arrivedOnce(hub, home, sent);
  });

  it('a sender that prefers zstd and a receiver without it: br', async () => {
    const { hub, home, sent } = await world('zstd-receiver-missing', 20);
    const [a, b] = createPair();
    const offered: string[] = [];
    const [rHome] = await Promise.all([run(home, 'hub', offersOf(a, offered), ALL), run(hub, 'home', olderHello(b, ['gzip', 'br']), ALL)]);
    // the first of home's preference the hub lists
    expect(new Set(offered)).toEqual(new Set(['br']));
    expect(rHome.sent.jobs).toBe(sent.size);
    arrivedOnce(hub, home, sent);
  });
});
