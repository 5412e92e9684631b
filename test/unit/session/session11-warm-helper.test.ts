// session11 (relay11's R2): the stage worker's `sync -f` helper shell was spawned at the
// first commit that used it, on the stage worker's thread (5-37 ms there, measured by
// relay11), between a bag's last byte and its ACK. A session that answers an offer of 16
// jobs or more (whose commit is one syncfs) now has the helper started at that answer,
// while the bag's bytes are still to come.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FRAME, FrameDecoder, type Frame } from '../../../lib/session/frame.js';
import { encodeHello, encodeOffer } from '../../../lib/session/messages.js';
import { runSession } from '../../../lib/session/session.js';
import { stopStageWorker } from '../../../lib/session/stage-ops.js';
import { createPair } from '../../../lib/transport/pair.js';
import { CAPS, enqueue, makeSite, messages, store, tempDir } from './sites.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** pids of syncfs helper loops started by this test process (same vitest worker id in their environment) */
function helpers(): number[] {
  const mine = `VITEST_WORKER_ID=${process.env.VITEST_WORKER_ID ?? ''}`;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(join('/proc', d, 'cmdline'), 'latin1').includes('do sync -f')) continue;
      if (!readFileSync(join('/proc', d, 'environ'), 'latin1').split('\0').includes(mine)) continue;
      out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

describe.skipIf(process.platform !== 'linux')('the syncfs helper', () => {
  it('starts when an offer of 16 jobs or more is answered, before any of its bytes', async () => {
    await stopStageWorker();
    // none of this process's left from earlier sessions (they end with their worker)
    expect(await until(() => helpers().length === 0, 3000)).toBe(true);
    const t = tempDir('s11-warm');
    cleanups.push(t.remove);
    const hub = await makeSite(t.dir, 'hub');
    const home = await makeSite(t.dir, 'home');
    const jobs = [...(await enqueue(home, 'hub', messages(Array.from({ length: 20 }, () => 800), 12))).keys()];
    const hs = store(home, 'hub');
    await hs.open();
    const bag = await hs.buildBag((await hs.queuedJobs(new Set())).filter((j) => jobs.includes(j.id)), 'gzip');
    const s = store(hub, 'home');
    await s.open();
    const [evil, far] = createPair();
    const run = runSession({ link: far, store: s, site: 'hub', peer: 'home', codecs: ['gzip'], caps: CAPS, keepaliveMs: 500, idleTimeoutMs: 5000 });
    run.catch(() => {});
    cleanups.push(async () => {
      evil.abort(new Error('test done'));
      await run.catch(() => undefined);
      await stopStageWorker();
    });
    const got: Frame[] = [];
    const dec = new FrameDecoder();
    evil.input.on('data', (c: Buffer) => {
      const r = dec.push(c);
      if (r.ok) got.push(...r.value);
    });
    evil.output.write(encodeHello({ site: 'home', peer: 'hub', codecs: ['gzip'], ...CAPS, keepalive: 500, software: 'test' }));
    // a bag of 3 jobs first: no syncfs for it, no helper
    evil.output.write(encodeOffer({ bag: 'a'.repeat(64), size: 1000, codec: 'gzip', jobs: 3 }));
    expect(await until(() => got.some((f) => f.type === FRAME.ANSWER), 5000)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(helpers()).toEqual([]);
    // the bag of 20: answered, and the helper starts; no DATA of it is ever sent
    evil.output.write(encodeOffer({ bag: bag.bag, size: bag.size, codec: 'gzip', jobs: 20 }));
    expect(await until(() => got.filter((f) => f.type === FRAME.ANSWER).length === 2, 5000)).toBe(true);
    expect(await until(() => helpers().length === 1, 3000)).toBe(true);
  }, 30_000);
});
