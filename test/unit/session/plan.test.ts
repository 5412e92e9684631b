// How queued jobs are packed into bags: small ones together, oldest first; each large job
// alone, after them, smallest first; the receiver's caps respected; too large ones held.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BAG_TARGET, LARGE_JOB, planBags, type QueuedJob } from '../../../lib/session/store.js';

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
});
