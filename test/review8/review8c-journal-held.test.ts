// review8c: lmtpd's journal holds answered jobs that are not yet in out/PEER in memory, "up
// to 16 MiB (more: new commits wait)" (docs/spool.md, The LMTP journal; JOURNAL_MAX_HELD).
// The cap is checked only before a batch, and a batch takes every job queued (up to
// max(256, lmtp.max_connections)): many transactions that end together while the held
// jobs are just under the cap are all answered and held, up to a batch of 128 KiB jobs
// past it. Here 60 of them end together with 15.5 MiB held: held reaches ~22.5 MiB.
// (Bounded by the connections all the same: promise 7 holds, the stated bound does not.)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JOURNAL_MAX_HELD, LmtpJournal } from '../../lib/lmtp/journal.js';
import { SpoolJobStore } from '../../lib/lmtp/spool-store.js';
import { GroupCommit } from '../../lib/spool/commit.js';
import { Spool } from '../../lib/spool/spool.js';

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-review8c-held-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const header = { to: 'hub', command: 'rsmtp' as const, args: [], sender: 's@x.test', recipients: ['a@x.test'] };

describe('review8c: answered jobs held in memory', () => {
  it(`stay within ${JOURNAL_MAX_HELD} bytes (and one job) when many transactions end together`, async () => {
    const committer = new GroupCommit();
    // held: nothing is written into out/, so every answered job stays in memory
    const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold: true });
    const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
    const body = Buffer.alloc(120 * 1024, 'm');
    const begin = async (): Promise<() => Promise<string>> => {
      const d = await store.begin(header, { maxSize: 1024 * 1024 });
      d.write(body);
      return () => d.commit();
    };
    let held = 0;
    // one at a time up to just under the cap
    while (held + 2 * body.length < JOURNAL_MAX_HELD) {
      await (await begin())();
      held += body.length;
    }
    // then 60 connections whose DATA ends in the same turn of the event loop
    const drafts = await Promise.all(Array.from({ length: 60 }, () => begin()));
    let answered = 0;
    for (const commit of drafts) void commit().then(() => answered++);
    await new Promise((r) => setTimeout(r, 1000));
    expect(held + answered * body.length).toBeLessThanOrEqual(JOURNAL_MAX_HELD + body.length + 4096);
    await journal!.abandon();
  });
});
