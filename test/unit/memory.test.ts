import { describe, expect, it } from 'vitest';
import { YoungGcPacer } from '../../lib/memory.js';

describe('YoungGcPacer', () => {
  it('runs a young collection every N bytes moved, and none before', () => {
    const p = new YoungGcPacer(1024 * 1024);
    p.moved(1024 * 1024 - 1);
    expect(p.runs).toBe(0);
    p.moved(1);
    expect(p.runs).toBe(1);
    for (let i = 0; i < 5; i++) p.moved(512 * 1024);
    expect(p.runs).toBe(3);
  });

  it('counts a chunk larger than N as one collection, not several', () => {
    const p = new YoungGcPacer(1000);
    p.moved(10_000);
    expect(p.runs).toBe(1);
    p.moved(999);
    expect(p.runs).toBe(1);
  });
});
