// review8c: a journal damaged at random offsets (a byte flipped, or everything from an
// offset on gone: a torn tail) and replayed. Whatever the damage, the replay writes into
// out/PEER a prefix of the answered jobs, each byte for byte as committed, and nothing
// else: never a damaged job, never a job out of order past a damaged record. A damaged
// file header (offset 0-31) replays nothing (media corruption, not a crash: the header
// is rewritten only at a reset, when nothing in the journal is needed).

import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JOURNAL_DIR, LmtpJournal, replayJournals } from '../../lib/lmtp/journal.js';
import { SpoolJobStore } from '../../lib/lmtp/spool-store.js';
import { GroupCommit } from '../../lib/spool/commit.js';
import { Spool } from '../../lib/spool/spool.js';

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailbag-review8c-corrupt-'));
  spool = await Spool.open(join(dir, 'spool'), { create: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('review8c: a damaged journal replayed', () => {
  it('writes a prefix of the answered jobs, each whole, for 150 random damages', async () => {
    const rand = rng(Number(process.env.REVIEW8C_SEED ?? 7));
    const committer = new GroupCommit();
    const { journal } = await LmtpJournal.open(spool, { fallback: committer, hold: true });
    const store = new SpoolJobStore(spool, 'home', committer, Date.now, journal);
    const jobs: { id: string; peer: string; payload: Buffer }[] = [];
    // 40 jobs in batches of 1 to 4 (transactions ending together)
    for (let n = 0; n < 40;) {
      const group = Math.min(40 - n, 1 + Math.floor(rand() * 4));
      const pending = [];
      for (let k = 0; k < group; k++, n++) {
        const peer = n % 3 === 0 ? 'mx2' : 'hub';
        const payload = Buffer.alloc(1 + Math.floor(rand() * 20_000), `${n % 10}`);
        const d = await store.begin({ to: peer, command: 'rsmtp', args: [], sender: 's@x.test', recipients: ['a@x.test'] }, { maxSize: 1024 * 1024 });
        d.write(payload);
        pending.push(d.commit().then((id) => ({ id, peer, payload })));
      }
      jobs.push(...(await Promise.all(pending)));
    }
    await journal!.abandon();
    const path = join(spool.root, JOURNAL_DIR, '1');
    // the journal's used part (its records: `MBJR`, generation, path length, data length,
    // CRC, path, data), kept to undo each damage
    const whole = readFileSync(path);
    let end = 4096;
    for (let k = 0; k < jobs.length; k++) end += 20 + whole.readUInt32LE(end + 8) + whole.readUInt32LE(end + 12);
    expect(whole.readUInt32LE(end)).toBe(0);
    const used = end + 4096;
    const original = Buffer.from(whole.subarray(0, used));
    let fd: number;
    const files = (): { peer: string; id: string; data: Buffer }[] =>
      ['hub', 'mx2'].flatMap((peer) => {
        let names: string[] = [];
        try {
          names = readdirSync(join(spool.root, 'out', peer));
        } catch {
          // none yet
        }
        return names.map((id) => ({ peer, id, data: readFileSync(join(spool.root, 'out', peer, id)) }));
      });
    for (let round = 0; round < 150; round++) {
      const tear = rand() < 0.3;
      const at = round === 0 ? 5 : Math.floor(rand() * (end + 64));
      fd = openSync(path, 'r+');
      if (tear) writeSync(fd, Buffer.alloc(used - at), 0, used - at, at);
      else writeSync(fd, Buffer.from([original[at]! ^ (1 << Math.floor(rand() * 8))]), 0, 1, at);
      closeSync(fd);
      await replayJournals(spool);
      const got = files();
      const byId = new Map(jobs.map((j, i) => [j.id, i]));
      const idx = got.map((g) => byId.get(g.id)).sort((a, b) => a! - b!);
      // a prefix: jobs 0..k-1, no gap
      expect(idx, `round ${round}, ${tear ? 'torn' : 'flipped'} at ${at}`).toEqual(idx.map((_, i) => i));
      for (const g of got) {
        const j = jobs[byId.get(g.id)!]!;
        expect(g.peer).toBe(j.peer);
        // the job file: `mailbag-job 1`, its header line, then the payload as committed
        const text = g.data;
        const nl = text.indexOf(10, text.indexOf(10) + 1);
        expect(text.subarray(nl + 1).equals(j.payload), `round ${round}: job ${g.id} whole`).toBe(true);
      }
      if (at >= end) expect(got).toHaveLength(jobs.length);
      if (at < 32) expect(got).toHaveLength(0);
      // undo: out/ emptied, the journal's bytes (and its header: the replay reset it) restored
      for (const g of got) rmSync(join(spool.root, 'out', g.peer, g.id));
      fd = openSync(path, 'r+');
      writeSync(fd, original, 0, used, 0);
      closeSync(fd);
    }
  });
});
