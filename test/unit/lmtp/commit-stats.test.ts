// The group commit's figures lmtpd logs at its stop: the time from a job's commit to
// durable (waitMs) and its parts, waiting for the batch in progress (queueMs) and the
// batch's file fsyncs (fsyncMs), summed over files. A second batch that queued while the
// first was being fsynced must show that wait.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../../lib/spool/commit.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-commit-stats-'));
  mkdirSync(join(dir, 'tmp'));
  mkdirSync(join(dir, 'out'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('GroupCommit stats', () => {
  it('splits commit → durable into waiting for the batch in progress, the fsyncs and the rest', async () => {
    const gc = new GroupCommit();
    const stage = async (name: string): Promise<ReturnType<GroupCommit['stage']> extends Promise<infer S> ? S : never> => {
      const f = await gc.stage(join(dir, 'out', name), { tmpDir: join(dir, 'tmp'), noReplace: true, label: 'job' });
      f.write(Buffer.alloc(20_000, 0x61));
      return f;
    };
    const first = await Promise.all([stage('a1'), stage('a2')]);
    const second = await Promise.all([stage('b1'), stage('b2'), stage('b3')]);
    const firstDone = Promise.all(first.map((f) => f.commit()));
    // the committer takes the first batch on the next turn of the event loop; these
    // three queue while its fsyncs are under way
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const secondDone = Promise.all(second.map((f) => f.commit()));
    await Promise.all([firstDone, secondDone]);
    const s = gc.stats;
    expect(s.files).toBe(5);
    expect(s.batches).toBe(2);
    expect(s.fsyncMs).toBeGreaterThan(0);
    expect(s.queueMs).toBeGreaterThan(0);
    expect(s.queueMs + s.fsyncMs).toBeLessThanOrEqual(s.waitMs);
  });
});
