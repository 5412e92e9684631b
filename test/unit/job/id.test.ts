import { describe, expect, it } from 'vitest';
import { isJobId, jobIdTime, newJobId } from '../../../lib/job/index.js';

describe('job ids', () => {
  it('are lowercase, fixed width, safe as file names and valid', () => {
    for (let i = 0; i < 1000; i++) {
      const id = newJobId();
      expect(id).toMatch(/^[0-9a-f]{24}$/);
      expect(isJobId(id)).toBe(true);
    }
  });

  it('sort by creation time as plain strings, across digit-count changes', () => {
    const times = [0, 1, 15, 16, 255, 4096, 1_700_000_000_000, 1_800_000_000_000, 2 ** 47];
    const ids = times.map((t) => newJobId(t));
    expect([...ids].sort()).toEqual(ids);
    expect(ids.map(jobIdTime)).toEqual(times);
  });

  it('made in the same millisecond by one process still sort in creation order and differ', () => {
    const ids = Array.from({ length: 2000 }, () => newJobId(1_800_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('carry the clock time', () => {
    const before = Date.now();
    const t = jobIdTime(newJobId());
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });
});
