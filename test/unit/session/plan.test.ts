// How queued jobs are packed into bags: small ones together, oldest first; each large job
// alone, after them, smallest first; the receiver's caps respected; too large ones held.

import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandedSizeOf, writeBag } from '../../../lib/bag/writer.js';
import type { BagCodec } from '../../../lib/bag/codec.js';
import { BAG_TARGET, LARGE_JOB, planBags, worstCompressed, type QueuedJob } from '../../../lib/session/store.js';

const CAPS = { maxBag: 256 << 20, maxExpanded: 1 << 30, maxJobs: 10000, maxJob: 64 << 20 };
const job = (i: number, size: number): QueuedJob => ({ id: `0190000000${String(i).padStart(2, '0')}abcd`, size });

describe('planBags', () => {
  it('puts small mail first and every large job alone after it, smallest first', () => {
    const jobs = [job(1, 5000), job(2, 3 * LARGE_JOB), job(3, 700), job(4, LARGE_JOB), job(5, 20000)];
    const { bags, held } = planBags(jobs, CAPS);
    expect(held).toEqual([]);
    expect(bags.map((b) => b.map((j) => j.id.slice(10, 12)))).toEqual([['01', '03', '05'], ['04'], ['02']]);
  });

  it('respects the receiver\'s job count and holds what it would never accept', () => {
    const jobs = Array.from({ length: 7 }, (_, i) => job(i, 100));
    expect(planBags(jobs, { ...CAPS, maxJobs: 3 }).bags.map((b) => b.length)).toEqual([3, 3, 1]);
    const { held } = planBags([job(1, 100), job(2, 5 << 20)], { ...CAPS, maxJob: 1 << 20 });
    expect(held.map((j) => j.id)).toEqual([job(2, 0).id]);
  });

  it('keeps every job exactly once, in bags under the target and the caps', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 * LARGE_JOB }), { maxLength: 200 }), fc.integer({ min: 1, max: 50 }), (sizes, maxJobs) => {
        const jobs = sizes.map((s, i) => job(i, s));
        const { bags, held } = planBags(jobs, { ...CAPS, maxJobs });
        expect([...bags.flat(), ...held].map((j) => j.id).sort()).toEqual(jobs.map((j) => j.id).sort());
        for (const b of bags) {
          expect(b.length).toBeLessThanOrEqual(maxJobs);
          if (b.length > 1) expect(b.reduce((n, j) => n + j.size, 0)).toBeLessThanOrEqual(BAG_TARGET);
          if (b.some((j) => j.size >= LARGE_JOB)) expect(b).toHaveLength(1);
        }
      }),
    );
  });

  it('keeps a bag of several jobs under the receiver\'s cap on a bag\'s size, even if nothing in it compresses', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200_000 }), { maxLength: 100 }), fc.integer({ min: 16 * 1024, max: 4 << 20 }), (sizes, maxBag) => {
        const jobs = sizes.map((s, i) => job(i, s));
        const { bags } = planBags(jobs, { ...CAPS, maxBag });
        for (const b of bags) if (b.length > 1) expect(worstCompressed(expandedSizeOf(b.map((j) => j.size)))).toBeLessThanOrEqual(maxBag);
      }),
    );
  });
});

describe('worstCompressed', () => {
  const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
  for (const codec of ['br', 'gzip', 'none'] as BagCodec[]) {
    it(`bounds what ${codec} makes of random bytes`, async () => {
      for (const sizes of [[0], [1], [1000, 70_000], [300_000], Array.from({ length: 40 }, (_, i) => 1000 * i)]) {
        const bodies = sizes.map((n) => randomBytes(n));
        const jobs = bodies.map((body, i) => ({ name: job(i, 0).id, size: body.length, open: () => Readable.from([body]) }));
        const summary = await writeBag(jobs, sink(), { codec });
        expect(summary.expanded).toBe(expandedSizeOf(sizes));
        expect(summary.size).toBeLessThanOrEqual(worstCompressed(summary.expanded));
        // random bytes do not compress: the bound is tested where it is tight
        expect(summary.size).toBeGreaterThanOrEqual(0.99 * sizes.reduce((a, b) => a + b, 0));
      }
    });
  }
});
