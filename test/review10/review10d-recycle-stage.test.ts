// review10d: relay10's 272f432 hands the inflater's 64 KiB chunks back to it between two
// bag entries (readBag's recycle, used by the stager only). If a chunk were given back
// while a slice of it was still referenced (a job's bytes in a batch not yet copied, a
// large job's bytes being written, the next header), a staged job would hold another
// job's bytes. Real bags built by a real store, in every codec, with job sizes around the
// stager's thresholds (256 KiB gathered whole, 512 KiB created through the sink, larger
// streamed) and many small ones, staged by the stage worker as serve stages them; every
// staged file must be byte for byte the job file the sender queued.

import { afterEach, describe, expect, it } from 'vitest';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { zstdUnavailable, type BagCodec } from '../../lib/bag/index.js';
import { configureStageWorker, stageOnWorker, stopStageWorker } from '../../lib/session/stage-ops.js';
import type { StageRequest } from '../../lib/session/stage-bag.js';
import { CAPS, enqueue, makeSite, store, tempDir } from '../unit/session/sites.js';

const script = new URL('../unit/session/ts-stage-worker.mjs', import.meta.url);
const cleanups: (() => void)[] = [];
afterEach(async () => {
  while (cleanups.length) cleanups.pop()!();
  await stopStageWorker();
});

/** bytes that compress only a little, so the inflater fills many chunks */
function noisy(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761 + 7) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = i % 61 === 60 ? 0x0a : 0x21 + ((x >>> 16) % 90);
  }
  return Buffer.concat([Buffer.from(`Subject: review10d ${seed}\n\n`), b]);
}

const SIZES = [
  ...Array.from({ length: 120 }, (_, i) => 300 + ((i * 7919) % 9000)),
  255 * 1024, 256 * 1024 + 3, 300 * 1024, 511 * 1024, 520 * 1024, 1_500_000, 64 * 1024 - 200, 64 * 1024, 3 * 64 * 1024 + 17,
  ...Array.from({ length: 60 }, (_, i) => 100 + ((i * 104729) % 70_000)),
];

const CODECS: BagCodec[] = zstdUnavailable() === undefined ? ['zstd', 'br', 'gzip'] : ['br', 'gzip'];

describe('review10d: a stager that recycles the inflater\'s chunks', () => {
  it.each(CODECS)('stages every job of a real bag byte for byte (%s)', async (codec) => {
    configureStageWorker({ script });
    const t = tempDir(`review10d-recycle-${codec}`);
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    // shuffled, so that large and small jobs alternate in the bag
    const sizes = [...SIZES].sort((a, b) => ((a * 31) % 17) - ((b * 31) % 17));
    const sent = await enqueue(home, 'hub', sizes.map((n, i) => noisy(i + 1, n)));
    const out = store(home, 'hub');
    await out.open();
    const bag = await out.buildBag(await out.queuedJobs(new Set()), codec);
    const bytes = readFileSync(join(home.root, 'bags', 'out', 'hub', `${bag.bag}.bag`));
    const dir = join(hub.root, 'bags', 'in', 'home');
    mkdirSync(dir, { recursive: true });
    const req: StageRequest = { bag: bag.bag, codec, caps: CAPS, site: 'hub', peer: 'home', accept: ['rmail'], part: join(dir, `${bag.bag}.part`), staging: join(dir, `${bag.bag}.d`), size: bytes.length };
    // the partial grows as a link would bring it: the stager waits for bytes mid-entry
    const fd = openSync(req.part, 'w');
    const w = stageOnWorker(req, 0);
    for (let off = 0; off < bytes.length; ) {
      const n = Math.min(37_000, bytes.length - off);
      off += writeSync(fd, bytes, off, n, off);
      w.grew(off);
      if ((off / 37_000) % 5 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    closeSync(fd);
    const r = await w.done;
    expect(r.ok).toBe(true);
    const ids = [...sent.keys()].sort();
    expect(readdirSync(req.staging).sort()).toEqual(ids);
    const outDir = home.spool.path('out', 'hub');
    const wrong = ids.filter((id) => !readFileSync(join(req.staging, id)).equals(readFileSync(join(outDir, id))));
    expect(wrong).toEqual([]);
  }, 120_000);
});
