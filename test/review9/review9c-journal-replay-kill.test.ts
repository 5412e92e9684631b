// review9c: the batched journal replay (5d7f435: batches of 256 jobs / 16 MiB, one
// directory fsync per batch; 74a936e: a failed directory fsync is not done) killed with
// SIGKILL in the middle, again and again, by the built `mailbag lmtpd` at its start.
// (1) MAILBAG_FAULT=journal-mid-materialize at every start: each start dies after one
// batch's links, before their directory fsync, so the replay advances one batch per start
// (600 jobs, three batches). (2) SIGKILL at random moments of the start. Then an orderly
// start and stop: out/PEER holds every answered job of the journal, byte for byte, each
// once, nothing else; tmp/ is empty; the journal replays nothing more.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { journalJobs, LmtpJournal } from '../../lib/lmtp/journal.js';
import { SpoolJobStore } from '../../lib/lmtp/spool-store.js';
import { GroupCommit } from '../../lib/spool/commit.js';
import { Spool } from '../../lib/spool/spool.js';
import { mailbagBin, startLmtpd, type Lmtpd } from '../unit/lmtp/lmtpd-process.js';

const enabled = existsSync(mailbagBin);
const peers = { hub: ['a.test'], mx2: ['b.test'] };

let dir: string | undefined;
let live: Lmtpd | undefined;
afterEach(async () => {
  await live?.kill();
  live = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** a journal left by a crash with `n` answered jobs for hub and mx2 (lmtpd's own journal, held: none written out) */
async function crashedJournal(root: string, n: number, rand: () => number): Promise<Map<string, Buffer>> {
  const spool = await Spool.open(root, { create: true });
  const committer = new GroupCommit();
  const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold: true });
  const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
  for (let k = 0; k < n; k += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - k) }, async (_, i) => {
      const to = (k + i) % 3 === 0 ? 'mx2' : 'hub';
      const d = await store.begin({ to, command: 'rsmtp', args: [], sender: 's@src.test', recipients: [to === 'hub' ? 'x@a.test' : 'y@b.test'] }, { maxSize: 1024 * 1024 });
      d.write(Buffer.from(`Subject: replay-${k + i}\n\n${'r'.repeat(1 + Math.floor(rand() * 12_000))}\n`));
      return d.commit();
    }));
  }
  await journal!.abandon();
  const jobs = new Map<string, Buffer>();
  for (const j of journalJobs(root)) jobs.set(`${j.peer}/${j.id}`, j.data);
  expect(jobs.size).toBe(n);
  return jobs;
}

function outNow(root: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const peer of ['hub', 'mx2']) {
    let ids: string[] = [];
    try {
      ids = readdirSync(join(root, 'out', peer));
    } catch {
      // not made yet
    }
    for (const id of ids) m.set(`${peer}/${id}`, readFileSync(join(root, 'out', peer, id)));
  }
  return m;
}

async function finish(d: string, root: string, jobs: Map<string, Buffer>, log: string[]): Promise<void> {
  // an orderly start (no fault) and stop
  live = await startLmtpd({ dir: d, peers });
  log.push(live.log());
  expect(await live.stop()).toBe(0);
  live = undefined;
  const out = outNow(root);
  const missing = [...jobs.keys()].filter((k) => !out.has(k));
  const extra = [...out.keys()].filter((k) => !jobs.has(k));
  const damaged = [...jobs].filter(([k, v]) => out.has(k) && !out.get(k)!.equals(v)).map(([k]) => k);
  expect({ missing, extra, damaged }, log.join('\n')).toEqual({ missing: [], extra: [], damaged: [] });
  expect(readdirSync(join(root, 'tmp')).filter((f) => !f.endsWith('.lock'))).toEqual([]);
  expect(journalJobs(root)).toEqual([]);
}

describe.skipIf(!enabled)('review9c: the batched journal replay killed in the middle', () => {
  it('killed after each batch\'s links (journal-mid-materialize) at every start: one batch further each time, then every job once, whole', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailbag-review9c-replay-'));
    const root = join(dir, 'spool');
    const jobs = await crashedJournal(root, 600, rng(11));
    const log: string[] = [];
    const counts: number[] = [];
    for (let k = 0; k < 8; k++) {
      const r = await startLmtpd({ dir, peers, env: { MAILBAG_FAULT: 'journal-mid-materialize' } }, 30_000).then((x) => x, (e: Error) => e);
      counts.push(outNow(root).size);
      if (!(r instanceof Error)) {
        live = r;
        expect(await live.stop()).toBe(0);
        live = undefined;
        break;
      }
      expect(r.message).toMatch(/exited before it was ready/);
    }
    // 600 jobs in batches of 256: killed after 256 and 512 linked, the third start reaches the end
    expect(counts, log.join('\n')).toEqual([256, 512, 600, 600]);
    await finish(dir, root, jobs, log);
  }, 180_000);

  it('SIGKILL at random moments of the start (in the replay, after it), then every job once, whole', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailbag-review9c-replay-'));
    const root = join(dir, 'spool');
    const seed = Number(process.env.REVIEW9C_SEED ?? Date.now() % 100000);
    const rand = rng(seed);
    const jobs = await crashedJournal(root, 1500, rand);
    const log: string[] = [`seed ${seed}`];
    for (let k = 0; k < 12; k++) {
      const before = outNow(root).size;
      const r = await startLmtpd({ dir, peers }, 20 + Math.floor(rand() * 600)).then((x) => x, (e: Error) => e);
      if (!(r instanceof Error)) await r.kill();
      log.push(`kill ${k}: ${before} -> ${outNow(root).size} in out/${r instanceof Error ? '' : ' (it was ready)'}`);
    }
    await finish(dir, root, jobs, log);
    if (process.env.REVIEW9C_VERBOSE) console.log(log.join('\n'));
  }, 180_000);
});
